"""`dig` and `kdig` against `owncdn up`: visitors placed on three continents through
EDNS Client Subnet (RFC 7871) get the edges of the nearest location, with a scope.
And `curl` over HTTPS (HTTP/2) to every edge with the certificate of up's local CA,
and the push it prints run as printed: the site then comes from every edge.

`owncdn up` runs as a user runs it (a process group of its own, free ports, state in
a temporary directory) with its default GeoIP database, DB-IP City Lite; the ECS
addresses are networks of national carriers and universities whose places have not
changed in decades. Its example config puts fra (Frankfurt, 127.0.1.1), iad
(Ashburn, 127.0.1.2) and sin (Singapore, 127.0.1.3) on three continents.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

ROWS = [
    # (ECS network, where it is, the location's edge address)
    ("80.130.1.0/24", "Germany", "127.0.1.1"),
    ("81.169.145.0/24", "Germany", "127.0.1.1"),
    ("73.1.1.0/24", "United States", "127.0.1.2"),
    ("8.8.8.0/24", "United States", "127.0.1.2"),
    ("133.11.1.0/24", "Japan", "127.0.1.3"),
    ("203.178.141.0/24", "Japan", "127.0.1.3"),
]


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """A running `owncdn up`; yields the DNS port (its output and state: ``up.home``)."""
    home = tmp_path_factory.mktemp("up")
    out = open(home / "out.txt", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "owncdn.cli", "up", "--state-dir", str(home / "state"), "--port", "0",
         "--dns-port", "0", "--control-port", "0", "--tls-port", "0", "--edges", "3"],
        cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port = _dns_port(proc, home / "out.txt")
        _up.home = home
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # `owncdn up` stops its children
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


class _up:
    home = None


def _dns_port(proc, log) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text()
        found = re.search(r"^  dns +127\.0\.0\.1:(\d+)", text, re.M)
        if found and "owncdn is up" in text:
            return int(found.group(1))
        if proc.poll() is not None:
            raise AssertionError(f"owncdn up exited with {proc.returncode}:\n{text}")
        time.sleep(0.2)
    raise AssertionError(f"owncdn up did not come up:\n{log.read_text()}")


def query(tool: str, port: int, subnet: str, name: str = "demo.cdn.test") -> str:
    patience = ["+tries=3", "+time=5"] if tool == "dig" else ["+retry=2", "+time=5"]  # kdig's spelling
    done = subprocess.run([tool, "@127.0.0.1", "-p", str(port), f"+subnet={subnet}", *patience,
                           name, "A"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def answer(text: str, name: str = "demo.cdn.test") -> list[str]:
    return re.findall(r"^" + re.escape(name) + r"\.\s+\d+\s+IN\s+A\s+(\S+)", text, re.M)


def scope(text: str, subnet: str) -> int:
    # dig: "; CLIENT-SUBNET: 80.130.1.0/24/21"; kdig: ";; CLIENT-SUBNET: 80.130.1.0/24/21"
    found = re.search(r"CLIENT-SUBNET: " + re.escape(subnet) + r"/(\d+)", text)
    assert found, text
    return int(found.group(1))


@pytest.mark.parametrize("tool", ["dig", "kdig"])
@pytest.mark.parametrize("subnet, where, edge", ROWS)
def test_nearest_location_by_client_subnet(up, tool, subnet, where, edge):
    text = query(tool, up, subnet)
    assert "status: NOERROR" in text and re.search(r"[Ff]lags: qr aa", text), text  # authoritative
    assert answer(text) == [edge], f"a visitor in {where} should get {edge}:\n{text}"
    assert 0 < scope(text, subnet) <= 32


def test_https_on_every_edge_with_the_local_ca(up):
    home = _up.home
    text = (home / "out.txt").read_text()
    edges = re.findall(r"^  edge \S+ +http://\S+  https://(127\.0\.1\.\d+):(\d+)$", text, re.M)
    assert len(edges) == 3, text
    ca = home / "state" / "ca" / "ca.pem"
    assert oct((home / "state" / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert "PRIVATE KEY" not in text
    for ip, port in edges:
        done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                               "--cacert", str(ca), "--resolve", f"demo.cdn.test:{port}:{ip}",
                               f"https://demo.cdn.test:{port}/"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "2 200"


def test_the_printed_push_puts_a_site_on_every_edge(up):
    home = _up.home
    text = (home / "out.txt").read_text()
    push = re.search(r"^  (\S+ push \./public --service site .*)$", text, re.M)
    curl = re.search(r"^  curl -si -H 'Host: (site\.cdn\.test)' http://", text, re.M)
    assert push and curl, text
    edges = re.findall(r"^  edge \S+ +http://(127\.0\.1\.\d+):(\d+)  ", text, re.M)
    (home / "public" / "docs").mkdir(parents=True)
    (home / "public" / "index.html").write_text("<h1>pushed by the test</h1>\n")
    (home / "public" / "docs" / "index.html").write_text("docs\n")
    done = subprocess.run(push.group(1).split(), cwd=home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "site release 1 (2 files" in done.stdout and "served by 3 edge(s)" in done.stdout, done.stdout
    assert len(edges) == 3, text
    for ip, port in edges:
        for path, body in (("/", "<h1>pushed by the test</h1>\n"), ("/docs/", "docs\n")):
            got = subprocess.run(["curl", "-sS", "-D", "-", "-H", f"Host: {curl.group(1)}", f"http://{ip}:{port}{path}"],
                                 capture_output=True, text=True, timeout=60)
            assert got.returncode == 0, got.stderr
            head, _, payload = got.stdout.partition("\n\n")  # text mode: CRLF read as LF
            assert head.startswith("HTTP/1.1 200") and "X-Cache: PUSH" in head, got.stdout
            assert payload == body
    dns_port = int(re.search(r"dig @127.0.0.1 -p (\d+)", text).group(1))
    for subnet, _, edge in ROWS[::2]:  # every location serves the release: the nearest one answers
        assert answer(query("dig", dns_port, subnet, "site.cdn.test"), "site.cdn.test") == [edge]
