"""`owncdn check`: every ✓ against a working fleet and an HTTPS edge, ✗ and exit 1 when broken.

A real control plane, edges and an owncdn DNS server (``owncdn.testing.fleet``,
``owncdn.testing.dnsnode``) in front of the demo origin, whose echo path returns
the request headers it received; an HTTPS edge with a test CA.
"""

import asyncio

from typer.testing import CliRunner

from owncdn.cli.check_cmd import run_checks
from owncdn.cli.main import app
from owncdn.demo.site import ECHO_PATH, demo_origin
from owncdn.testing.certs import TestCA
from owncdn.testing.dnsnode import DnsNodeUnderTest
from owncdn.testing.fleet import Fleet
from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin, Reply

SITE = """
version: 1
dns: {{zone: cdn.test, nameservers: [ns1.cdn.test]}}
locations:
  - {{name: loc0, city: Frankfurt, lat: 50.1, lon: 8.7, addresses: [127.0.1.1]}}
services:
  - name: www
    hostnames: [www.cdn.test]
    origins: ["{origin}"]
"""


def states(checks) -> dict[str, str]:
    return {c.name: c.state for c in checks}


async def test_every_check_passes_through_a_fleet_with_dns_and_purge(tmp_path):
    origin = demo_origin()
    await origin.start()
    origin_port = origin.port
    try:
        async with Fleet(tmp_path, edges=1) as fleet:
            async with DnsNodeUnderTest(fleet, tmp_path / "dns") as dns:
                await dns.connected()
                await fleet.wait_applied(await fleet.apply(SITE.format(origin=origin.url)))
                edge = fleet.edges[0]
                args = ["check", "http://www.cdn.test/", "--dns", f"127.0.0.1:{dns.port}",
                        "--connect-to", f"127.0.1.1:{edge.port}", "--origin-host", f"127.0.0.1:{origin_port}",
                        "--control", fleet.url, "--token", fleet.admin_token]
                for _ in range(50):   # the DNS server has the version once it answers the name
                    checks = await asyncio.to_thread(run_checks, "http://www.cdn.test/", f"127.0.0.1:{dns.port}",
                                                     f"127.0.1.1:{edge.port}", echo_path="", timeout=2)
                    if checks[0].ok:
                        break
                    await asyncio.sleep(0.1)
                result = await asyncio.to_thread(CliRunner().invoke, app, args)
    finally:
        await origin.close()

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line[0] for line in lines] == ["✓"] * 7, result.output
    text = result.output
    assert "www.cdn.test -> 127.0.1.1" in text
    assert "edge-0 (loc0)" in text
    assert "cache" in text and "HIT then HIT" in text   # the loop above warmed it
    assert f"127.0.0.1:{origin_port}" in text            # Host at the origin
    assert "purge" in text and "next request: MISS" in text
    assert any(r.path == ECHO_PATH for r in origin.requests)


async def test_a_cold_url_is_a_miss_then_a_hit_and_an_untrusted_ca_fails():
    origin = demo_origin()
    async with HttpsEdge(origin) as t:
        checks = await asyncio.to_thread(run_checks, "https://example.test/style.css",
                                         connect_to=f"127.0.0.1:{t.tls_port}", ca=None, echo_path="")
    # No --ca: the test CA is not trusted, which is a failed certificate check.
    assert states(checks)["TLS certificate"] == "fail"
    assert "not trusted" in next(c.detail for c in checks if c.name == "TLS certificate")
    assert next(c.detail for c in checks if c.name == "cache") == "MISS then HIT"


async def test_https_edge_passes_with_the_test_ca(tmp_path):
    origin = demo_origin()
    async with HttpsEdge(origin) as t:
        ca = t.ca.write(tmp_path)
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "check", "https://www.example.test/", "--connect-to", f"127.0.0.1:{t.tls_port}", "--ca", str(ca)])
    assert result.exit_code == 0, result.output
    assert "✓ TLS certificate" in result.output and "example.test, *.example.test" in result.output
    assert "- DNS" in result.output and "- purge" in result.output


async def test_wrong_certificate_name_fails_with_exit_1(tmp_path):
    """The edge has a certificate for other.test only: it refuses the handshake for
    example.test (unrecognized_name), which is what a visitor meets."""
    origin = demo_origin()
    async with HttpsEdge(origin, names=("other.test",), ca=TestCA()) as t:
        ca = t.ca.write(tmp_path)
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "check", "https://example.test/", "--connect-to", f"127.0.0.1:{t.tls_port}", "--ca", str(ca)])
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if "TLS certificate" in x)
    assert line.startswith("✗") and "unrecognized name" in line


async def test_origin_that_loses_x_forwarded_for_fails_with_exit_1(tmp_path):
    origin = FakeOrigin()
    origin.route("/", body=b"hi", headers={"Cache-Control": "max-age=60"})

    def echo_without_xff(req) -> Reply:
        import json

        kept = [[k, v] for k, v in req.raw_headers if k.lower() != "x-forwarded-for"]
        return Reply(200, json.dumps({"headers": kept}).encode(), {"Cache-Control": "no-store"})

    origin.route(ECHO_PATH, handler=echo_without_xff)
    async with HttpsEdge(origin) as t:
        ca = t.ca.write(tmp_path)
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "check", "https://example.test/", "--connect-to", f"127.0.0.1:{t.tls_port}", "--ca", str(ca)])
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if "X-Forwarded-For" in x)
    assert line.startswith("✗") and "no X-Forwarded-For" in line
    assert next(x for x in result.output.splitlines() if "Host at origin" in x).startswith("✓")
