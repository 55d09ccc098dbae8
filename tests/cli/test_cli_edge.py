"""`owncdn edge` and `owncdn up` as a user runs them: real processes, real sockets."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from owncdn.testing.client import HttpClient
from owncdn.testing.origin import FakeOrigin
from owncdn.testing.ports import free_port, free_ports_in_a_row, wait_for_port

OWNCDN = [sys.executable, "-m", "owncdn.cli"]


async def test_edge_command_serves_logs_and_stops_cleanly(tmp_path: Path):
    origin = await FakeOrigin().start()
    origin.route("/hello", body=b"hi", headers={"Cache-Control": "max-age=60"})
    log = tmp_path / "access.log"
    (tmp_path / "cdn.yaml").write_text(
        f"version: 1\nedge: {{id: cli-edge, location: here, access_log: {log}}}\n"
        f"services:\n  - name: s\n    hostnames: [example.test]\n    origins: ['{origin.url}']\n")
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml"),
                                      "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        await wait_for_port(port, proc)
        async with HttpClient("127.0.0.1", port) as c:
            first, second = await c.get("/hello"), await c.get("/hello")
        async with HttpClient("127.0.0.1", admin) as c:
            health = await c.get("/healthz")
            stats = json.loads((await c.get("/stats")).body)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
        await origin.close()
    assert (first.cache, second.cache, second.body) == ("MISS", "HIT", b"hi")
    assert second.headers["x-served-by"] == "cli-edge (here)"
    assert health.status == 200 and stats["responses"] == {"HIT": 1, "MISS": 1, "STALE": 0, "REVALIDATED": 0, "PASS": 0}
    assert code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["cache"] for line in lines] == ["MISS", "HIT"]


def test_edge_command_with_a_bad_config_prints_problems_not_a_traceback(tmp_path: Path):
    (tmp_path / "cdn.yaml").write_text("version: 1\nservices:\n  - name: s\n    hostnames: []\n")
    result = subprocess.run(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cdn.yaml:4" in result.stderr and "Traceback" not in result.stderr


async def test_up_starts_control_plane_edges_and_origin_and_stops_cleanly(tmp_path: Path):
    state = tmp_path / "state"
    proc = subprocess.Popen(OWNCDN + ["up", "--port", str(free_port()), "--edges", "3", "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        loop = asyncio.get_running_loop()
        lines = []
        while not any("dig @" in line for line in lines):
            line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 60)
            assert line, proc.stderr.read()
            lines.append(line)
        text = "".join(lines)
        host, ip, port = re.search(r"curl -sI -H 'Host: (\S+)' http://([\d.]+):(\d+)/", text).groups()
        edges = re.findall(r"edge (\w+)\s+http://([\d.]+):(\d+)", text)
        dns_port = int(re.search(r"dig @127.0.0.1 -p (\d+)", text).group(1))
        import dns.message
        import dns.query

        reply = dns.query.udp(dns.message.make_query(host, "A"), "127.0.0.1", port=dns_port, timeout=5)
        dns_answer = sorted(rr.to_text() for rrset in reply.answer for rr in rrset)
        replies = []
        for _, eip, eport in edges:
            async with HttpClient(eip, int(eport), default_host=host) as c:
                replies.append((await c.get("/"), await c.get("/")))
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20)
    assert len(edges) == 3 and len({eip for _, eip, _ in edges}) == 3
    assert dns_answer == ["127.0.1.1"]  # no GeoIP database: the first location
    assert (state / "dns" / "snapshot.json").exists()  # the DNS server follows the control plane
    assert ip == edges[0][1]
    for (name, _, _), (first, second) in zip(edges, replies):
        assert first.status == 200 and b"owncdn" in first.body
        assert (first.cache, second.cache) == ("MISS", "HIT")
        assert second.headers["x-served-by"] == f"edge-{name} ({name})"
    assert code == 0
    assert (state / "cdn.yaml").exists() and (state / "control" / "control.db").exists()
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_owncdn_child(p, state)]


def _is_owncdn_child(proc_dir: Path, state: Path) -> bool:
    try:
        return str(state) in (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


async def test_workers_share_the_listen_socket_and_stop_together(tmp_path: Path):
    origin = await FakeOrigin().start()
    origin.route("/w", body=b"w", headers={"Cache-Control": "max-age=60"})
    (tmp_path / "cdn.yaml").write_text(
        f"version: 1\nedge: {{id: multi, location: here, access_log: 'off'}}\n"
        f"services:\n  - name: s\n    hostnames: [example.test]\n    origins: ['{origin.url}']\n")
    port, admin = free_port(), free_ports_in_a_row(2)
    proc = subprocess.Popen(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml"), "--workers", "2",
                                      "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
                                      "--state-dir", str(tmp_path / "state")])
    try:
        await wait_for_port(admin, proc)
        await wait_for_port(admin + 1, proc)  # each worker binds its admin port after its listener
        served_by = set()
        for _ in range(60):
            async with HttpClient("127.0.0.1", port) as c:
                served_by.add((await c.get("/w")).headers["x-served-by"])
            if len(served_by) == 2:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
        await origin.close()
    assert served_by == {"multi-w0 (here)", "multi-w1 (here)"}
    assert code == 0
