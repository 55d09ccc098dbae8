"""The CDN as code from the command line: apply, plan, versions, rollback, status,
purge and tokens, against a real control plane with edges following it."""

import asyncio
import os
import sys

from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

CDN = """version: 1
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
    cache: {{default_ttl: {ttl}}}
environments:
  production: {{}}
  staging:
    services:
      - name: site
        cache: {{default_ttl: 5s}}
"""


async def owncdn(fleet: Fleet, *args: str, token: str | None = None) -> tuple[int, str, str]:
    env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=token or fleet.admin_token)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "owncdn.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_apply_plan_versions_rollback_status_purge(tmp_path):
    origin = await FakeOrigin().start()
    origin.route("/", body=b"home", headers={"Cache-Control": "max-age=600"})
    cdn = tmp_path / "cdn.yaml"
    async with Fleet(tmp_path / "fleet", edges=2) as fleet:
        cdn.write_text(CDN.format(origin=origin.url, ttl="60s"))
        code, out, err = await owncdn(fleet, "plan", str(cdn))
        assert code == 0 and "+ service site" in out, err
        code, out, err = await owncdn(fleet, "apply", str(cdn), "-m", "first")
        assert (code, out.strip()) == (0, "production: applied v1"), err
        await fleet.wait_applied(1)

        cdn.write_text(CDN.format(origin=origin.url, ttl="120s"))
        code, out, _ = await owncdn(fleet, "plan", str(cdn))
        assert "services[site].cache.default_ttl: 60.0 -> 120.0" in out
        code, out, _ = await owncdn(fleet, "apply", str(cdn))
        assert out.strip() == "production: applied v2"
        await fleet.wait_applied(2)

        code, out, _ = await owncdn(fleet, "versions")
        assert [line.split()[0] for line in out.splitlines()] == ["v2", "v1"]
        code, out, _ = await owncdn(fleet, "rollback", "--to", "1")
        assert out.strip() == "production: v3 is v1 again"
        await fleet.wait_applied(3)
        assert fleet.edges[0].edge.config.services[0].cache.default_ttl == 60.0

        code, out, _ = await owncdn(fleet, "status")
        assert code == 0 and "edge-0" in out and "edge-1" in out and "v3" in out

        for i in range(2):
            await fleet.get(i, "/")
        code, out, err = await owncdn(fleet, "purge", "http://example.test/")
        assert code == 0, err
        assert "edge-0" in out and "edge-1" in out and "acknowledged by 2 edge(s)" in out
        assert [(await fleet.get(i, "/")).cache for i in range(2)] == ["MISS", "MISS"]
    await origin.close()


async def test_an_invalid_file_never_leaves_the_machine(tmp_path):
    cdn = tmp_path / "cdn.yaml"
    cdn.write_text("version: 1\nservices:\n  - name: site\n    hostnames: [example.test]\n    origins: [ftp://x]\n")
    async with Fleet(tmp_path / "fleet", edges=1) as fleet:
        code, out, err = await owncdn(fleet, "apply", str(cdn))
        versions = await asyncio.to_thread(fleet.api.list_versions, "production")
    assert code == 1 and "cdn.yaml:5" in err and "Traceback" not in err
    assert versions == []


async def test_tokens_and_scopes_from_the_cli(tmp_path):
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        code, out, _ = await owncdn(fleet, "token", "create", "ci-reader", "--scope", "read")
        reader = out.strip()
        code_ok, _, _ = await owncdn(fleet, "versions", token=reader)
        code_no, _, err = await owncdn(fleet, "rollback", "--to", "1", token=reader)
        code_bad, _, err_bad = await owncdn(fleet, "status", token="ocdn_nope_nope")
    assert code == 0 and reader.startswith("ocdn_")
    assert code_ok == 0
    assert code_no == 1 and "deploy" in err
    assert code_bad == 1 and "token" in err_bad and "Traceback" not in err_bad


async def test_a_service_from_its_origin_url_alone(tmp_path):
    origin = await FakeOrigin().start()
    origin.route("/", body=b"shop", headers={"Cache-Control": "max-age=60"})
    async with Fleet(tmp_path / "fleet", edges=1) as fleet:
        code, out, err = await owncdn(fleet, "service", "add", origin.url, "--name", "shop")
        assert code == 0, err
        assert out.strip() == "production: service shop in v1; point a CNAME at shop.cdn.test"
        await fleet.wait_applied(1)
        reply = await fleet.get(0, "/", host="shop.cdn.test")
        code, listed, _ = await owncdn(fleet, "service", "list")
    assert (reply.status, reply.body) == (200, b"shop")
    assert listed.startswith("shop") and "shop.cdn.test" in listed and origin.url in listed
    await origin.close()
