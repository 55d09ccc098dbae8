"""`dig` and `kdig` against `owncdn up`: visitors placed on three continents through
EDNS Client Subnet (RFC 7871) get the edges of the nearest location, with a scope.
And `curl` over HTTPS (HTTP/2) to every edge with the certificate of up's local CA.

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


def query(tool: str, port: int, subnet: str) -> str:
    patience = ["+tries=3", "+time=5"] if tool == "dig" else ["+retry=2", "+time=5"]  # kdig's spelling
    done = subprocess.run([tool, "@127.0.0.1", "-p", str(port), f"+subnet={subnet}", *patience,
                           "demo.cdn.test", "A"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def answer(text: str) -> list[str]:
    return re.findall(r"^demo\.cdn\.test\.\s+\d+\s+IN\s+A\s+(\S+)", text, re.M)


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
