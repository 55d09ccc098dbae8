"""Pushing a site from the command line: push, change one file, push again (one blob
moves), list releases, roll back; what is refused, and that a refused push changes nothing."""

import asyncio
import os
import sys

from owncdn.testing.fleet import Fleet

CDN = """version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    mode: push
  - name: pulled
    hostnames: [pulled.example.com]
    origins: [https://origin.example.com]
"""


async def owncdn(fleet: Fleet, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=fleet.admin_token)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "owncdn.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def blob_files(fleet: Fleet) -> set[str]:
    return {p.name for p in fleet.blobs.root.glob("??/*")}


def make_site(root):
    (root / "about").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "about" / "index.html").write_text("about us")
    (root / "style.css").write_text("body { color: black }")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # streamed in chunks


async def test_push_change_one_file_push_again_releases_rollback(tmp_path):
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err
        assert "production: blog release 1 (4 files" in out and "uploaded 4 blob(s)" in out
        first = blob_files(fleet)
        assert len(first) == 4

        (site / "style.css").write_text("body { color: navy }")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err
        assert "release 2" in out and "uploaded 1 blob(s), 20 B" in out  # exactly the changed file
        assert len(blob_files(fleet) - first) == 1

        code, out, _ = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert "release 3" in out and "uploaded 0 blob(s)" in out

        code, out, _ = await owncdn(fleet, "releases", "--service", "blog")
        assert code == 0
        lines = [line for line in out.splitlines() if line.strip("│ ").split(" ")[0] in {"1", "2", "3"}]
        assert [line.split("│")[1].strip() for line in lines] == ["3", "2", "1"]
        assert "*" in lines[0]

        code, out, err = await owncdn(fleet, "rollback", "--service", "blog", "--release", "1")
        assert (code, out.strip()) == (0, "production: blog serves release 1 again"), err
        releases = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert [r["number"] for r in releases if r["current"]] == [1]

        code, _, err = await owncdn(fleet, "rollback", "--service", "blog")
        assert code == 1 and "--service and --release together" in err
        code, _, err = await owncdn(fleet, "rollback")
        assert code == 1 and "--to N" in err


async def test_refused_pushes_change_nothing(tmp_path):
    site = tmp_path / "public"
    make_site(site)
    (tmp_path / "secret.txt").write_text("not for the CDN")
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err

        (site / "about" / "leak.txt").symlink_to("../../secret.txt")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 1 and "leak.txt: a symlink to '../../secret.txt', which leads outside" in err
        (site / "about" / "leak.txt").unlink()

        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--max-files", "3")
        assert code == 1 and "more than 3 files" in err
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--max-file-size", "1MB")
        assert code == 1 and "big.bin" in err and "--max-file-size" in err
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "pulled")
        assert code == 1 and "set mode: push" in err and "previous release is still current" in err
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "nope")
        assert code == 1 and "no service 'nope'" in err
        for output in (err,):
            assert "Traceback" not in output

        releases = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert [(r["number"], r["current"]) for r in releases] == [(1, True)]
