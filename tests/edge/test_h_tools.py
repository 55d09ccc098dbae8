"""HTTP/2 and HTTPS checked by real clients: Debian's curl (--http2) and h2load
(nghttp2-client), against an edge in this process."""

import asyncio
import re
import shutil

import pytest

from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin

CACHEABLE = {"Cache-Control": "max-age=60", "Content-Type": "text/plain"}
BIG = bytes(range(256)) * 4096  # 1 MiB


def _need(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: scripts/test.sh installs it (curl, nghttp2-client)"
    return path


async def _run(*argv: str, timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize(("flag", "version"), [("--http2", "2"), ("--http1.1", "1.1")])
async def test_curl_verifies_the_certificate_and_gets_a_hit(tmp_path, flag, version):
    origin = FakeOrigin()
    origin.route("/a", body=b"hello from the origin\n", headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        ca = t.ca.write(tmp_path)
        argv = [_need("curl"), "-sS", flag, "--cacert", str(ca),
                "--resolve", f"www.example.test:{t.tls_port}:127.0.0.1",
                "-D", "-", f"https://www.example.test:{t.tls_port}/a"]
        first = await _run(*argv)
        second = await _run(*argv)
    for code, out, err in (first, second):
        assert code == 0, err
        assert out.startswith(f"HTTP/{version} 200"), out
        assert out.endswith("hello from the origin\n")
    assert re.search(r"(?im)^x-cache: MISS", first[1]) and re.search(r"(?im)^x-cache: HIT", second[1])


def _h2load_summary(out: str) -> dict[str, int]:
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert requests and codes, out
    return {"total": int(requests[1]), "succeeded": int(requests[4]), "failed": int(requests[5]),
            "2xx": int(codes[1]), "protocol_h2": int("Application protocol: h2" in out)}


async def test_h2load_a_few_hundred_requests_all_2xx():
    origin = FakeOrigin()
    for name in ("a", "b", "c"):
        origin.route(f"/{name}", body=name.encode() * 1000, headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        base = f"https://example.test:{t.tls_port}"
        # One request per path first, so all 600 below are cache hits over HTTP/2 and
        # the origin count does not depend on how the first ones race each other.
        code, _, err = await _run(
            _need("h2load"), "-n", "3", "-c", "1", "-m", "1", f"--connect-to=127.0.0.1:{t.tls_port}",
            f"{base}/a", f"{base}/b", f"{base}/c")
        assert code == 0, err
        code, out, err = await _run(
            _need("h2load"), "-n", "600", "-c", "6", "-m", "20", f"--connect-to=127.0.0.1:{t.tls_port}",
            f"{base}/a", f"{base}/b", f"{base}/c")
    assert code == 0, err
    summary = _h2load_summary(out)
    assert summary == {"total": 600, "succeeded": 600, "failed": 0, "2xx": 600, "protocol_h2": 1}
    assert sum(origin.hits(f"/{n}") for n in "abc") == 3


async def test_h2load_large_bodies_through_small_windows():
    origin = FakeOrigin()
    origin.route("/big", body=BIG, headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        # -w 16 / -W 17: 64 KiB stream and 128 KiB connection windows, so every
        # response needs many WINDOW_UPDATEs from the client.
        code, out, err = await _run(
            _need("h2load"), "-n", "40", "-c", "2", "-m", "4", "-w", "16", "-W", "17",
            f"--connect-to=127.0.0.1:{t.tls_port}", f"https://example.test:{t.tls_port}/big")
    assert code == 0, err
    assert _h2load_summary(out)["2xx"] == 40
    assert re.search(r"traffic: .*\((\d+)\) total", out) and int(
        re.search(r"\((\d+)\) data", out)[1]) == 40 * len(BIG)


async def test_curl_http2_post_with_expect_100_continue(tmp_path):
    origin = FakeOrigin()
    origin.route("/upload", handler=lambda req: _echo_size(req))
    payload = tmp_path / "payload.bin"
    payload.write_bytes(BIG * 2)
    async with HttpsEdge(origin) as t:
        ca = t.ca.write(tmp_path)
        code, out, err = await _run(
            _need("curl"), "-sS", "-v", "--http2", "--cacert", str(ca), "--expect100-timeout", "30",
            "--resolve", f"example.test:{t.tls_port}:127.0.0.1", "-H", "Expect: 100-continue",
            "--data-binary", f"@{payload}", f"https://example.test:{t.tls_port}/upload")
    assert code == 0, err
    assert "< HTTP/2 100" in err  # the interim response came before the body was sent
    assert out == f"got {2 * len(BIG)}"
    assert origin.requests[0].body == BIG * 2


def _echo_size(req):
    from owncdn.testing.origin import Reply

    return Reply(200, body=f"got {len(req.body)}".encode())
