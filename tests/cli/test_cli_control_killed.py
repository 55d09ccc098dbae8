"""A control plane killed with SIGKILL in the middle of a bundle upload, with real
processes (`owncdn control`, `owncdn push`): the half-received bundle stores nothing
and leaves no pack behind after the restart, bundles answered before the kill are all
there, and the push run again completes (control/dirblobs.py Rule 5). A second control
plane given the same blob directory is refused at start and touches nothing of the
first one's (Rule 7). One stopped with SIGINT or SIGTERM ends quietly (gctune Rule 4), and
one that cannot listen says so and fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from owncdn.client import Client
from owncdn.client.push import push_site
from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest
from owncdn.testing.fleet import free_port

SOURCE = """version: 1
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
"""


class Control:
    """`owncdn control` as a process of its own (its own process group)."""

    def __init__(self, state: Path, *args: str) -> None:
        self.state, self.port, self.args = state, free_port(), list(args)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Client:
        log = open(self.state.parent / "control.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "owncdn.cli", "control", "--listen", f"127.0.0.1:{self.port}",
                                      "--state-dir", str(self.state), "--no-health", *self.args],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, (self.state.parent / "control.log").read_text()[-2000:]
            try:
                if (self.state / "admin.token").exists() and Client(self.url, timeout=1).health()["ok"]:
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            assert time.monotonic() < deadline, "the control plane did not start"
            time.sleep(0.05)
        return Client(self.url, (self.state / "admin.token").read_text().strip(), timeout=30)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def packs(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "blobs" / "packs").glob("*"))


def unindexed(state: Path) -> list[str]:
    """Packs without an index: being written (or left by a writer that died)."""
    return [p.name for p in (state / "blobs" / "packs").glob("*.pack") if not p.with_suffix(".idx").exists()]


def test_a_control_plane_killed_mid_upload_keeps_what_it_answered_and_the_push_completes(tmp_path):
    site = tmp_path / "public"
    site.mkdir()
    files = {"index.html": b"<h1>home</h1>", "a.bin": os.urandom(600_000), "b.bin": os.urandom(700_000)}
    for name, data in files.items():
        (site / name).write_bytes(data)
    early = os.urandom(300_000)  # in a bundle answered before the kill
    control = Control(tmp_path / "control")
    try:
        api = control.start()
        api.add_version("production", SOURCE)
        token = (control.state / "admin.token").read_text().strip()
        assert len(api.put_bundle(header(digest(early), len(early)) + early)["stored"]) == 1
        body = b"".join(header(digest(d), len(d)) + d for d in (files["a.bin"], files["b.bin"]))
        with socket.create_connection(("127.0.0.1", control.port)) as sock:
            sock.sendall(b"POST /v1/blobs/bundle HTTP/1.1\r\nHost: control\r\n"
                         b"Authorization: Bearer " + token.encode() + b"\r\n"
                         b"Content-Type: application/x-owncdn-bundle\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) - 100_000])
            deadline = time.monotonic() + 20
            while not unindexed(control.state):  # the bundle's pack, being written
                assert time.monotonic() < deadline, packs(control.state)
                time.sleep(0.02)
            time.sleep(0.2)  # most of the body written into the pack, not all of it
            control.kill()
            assert unindexed(control.state)
        api = control.start()  # the same state directory
        assert packs(control.state) == ["1.idx", "1.pack"] and unindexed(control.state) == []  # the early bundle's
        assert api.missing_blobs([digest(files["a.bin"]), digest(files["b.bin"])]) == [
            digest(files["a.bin"]), digest(files["b.bin"])]  # the cut bundle stored nothing
        pushed = push_site(api, site, service="blog", env="production")
        assert pushed.release["number"] == 1 and pushed.blobs_uploaded == 3
        control.kill()  # right after the answer: what was answered is there after a restart
        api = control.start()
        assert api.missing_blobs([digest(d) for d in [early, *files.values()]]) == []
        for data in [early, *files.values()]:
            assert api.get_blob(digest(data)) == data
    finally:
        control.stop()


def test_a_second_control_plane_on_the_same_blob_directory_is_refused_and_touches_nothing(tmp_path):
    control = Control(tmp_path / "control")
    try:
        api = control.start()
        token = (control.state / "admin.token").read_text().strip()
        data = os.urandom(2_000_000)
        body = header(digest(data), len(data)) + data
        with socket.create_connection(("127.0.0.1", control.port)) as sock:
            sock.sendall(b"POST /v1/blobs/bundle HTTP/1.1\r\nHost: control\r\n"
                         b"Authorization: Bearer " + token.encode() + b"\r\n"
                         b"Content-Type: application/x-owncdn-bundle\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:1_000_000])
            deadline = time.monotonic() + 20
            while not unindexed(control.state):  # the upload's pack, being written
                assert time.monotonic() < deadline, packs(control.state)
                time.sleep(0.02)
            blobs = control.state / "blobs"
            second = subprocess.run([sys.executable, "-m", "owncdn.cli", "control", "--listen", f"127.0.0.1:{free_port()}",
                                     "--state-dir", str(tmp_path / "other"), "--no-health", "--blob-store", str(blobs)],
                                    capture_output=True, text=True, timeout=60)
            assert second.returncode != 0
            assert f"{blobs} is in use by another process (pid {control.proc.pid})" in second.stderr
            assert unindexed(control.state) == ["1.pack"]  # the first one's upload in flight, left alone
            sock.sendall(body[1_000_000:])
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert api.get_blob(digest(data)) == data
    finally:
        control.stop()


def test_a_control_plane_stopped_by_a_signal_ends_with_0_and_says_nothing_more(tmp_path):
    """Once it served (and froze its start-up heap, gctune Rule 1), a stop prints no
    shutdown noise: DuckDB's bindings reported every frozen object as leaked, and event
    streams still open were cancelled as the process ended ("Exception in ASGI
    application") rather than ended by the server's shutdown."""
    import signal as signals

    import httpx

    for sig in (signals.SIGINT, signals.SIGTERM):
        control = Control(tmp_path / sig.name / "control")
        control.state.parent.mkdir(parents=True)
        try:
            api = control.start()
            assert api.logs_query("SELECT count(*) AS n FROM logs")  # the analytics store (DuckDB) was used
            token = (control.state / "admin.token").read_text().strip()
            with httpx.stream("GET", f"{control.url}/v1/dashboard/events", headers={"Authorization": f"Bearer {token}"},
                              timeout=30) as events:
                lines = events.iter_lines()
                assert next(lines).startswith("event: changed")  # the stream is open
                log = control.state.parent / "control.log"
                started = log.read_text()
                os.killpg(control.proc.pid, sig)
                assert control.proc.wait(30) == 0
                assert list(lines)[-1:] in ([], [""])  # the stream ended, as the server shut down
            assert log.read_text() == started, log.read_text()[len(started):][:2000]
        finally:
            control.stop()


def test_a_control_plane_that_cannot_listen_says_why_and_exits_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "owncdn.cli", "control", "--listen", f"127.0.0.1:{port}",
                               "--state-dir", str(tmp_path / "control"), "--no-health"],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "owncdn: Address already in use" in done.stderr
