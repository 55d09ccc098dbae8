"""Blob GC end to end: three pushes to a fleet with one edge, `owncdn blobs gc`
deletes what only the release outside the retention needed, the edge still serves
and rolls back to a retained release, and rolling back to the pruned one fails in one line."""

import asyncio
import time

from owncdn.client.push import push_site
from owncdn.control.blobgc import GcSettings
from owncdn.core.content.retention import Retention
from owncdn.testing.fleet import Fleet
from tests.cli.test_cli_push import owncdn
from tests.control.test_blob_gc import set_age
from tests.edge.test_push_fleet import SOURCE, get, wait_serving, write_site


def column(out: str, name: str) -> list[str]:
    """The cells of column ``name`` of the table `owncdn releases` printed, row by row:
    what stands under its header (cli/tables.py: no borders, every cell whole)."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("release "))
    start = lines[header].index(name)
    rows = [line for line in lines[header + 2:] if line[:1].isdigit()]
    return [line[start:].split(" ")[0] for line in rows]


async def test_gc_then_serve_roll_back_and_refuse_the_pruned_release(tmp_path):
    site = write_site(tmp_path / "public", {"index.html": b"<h1>v1</h1>", "style.css": b"body {}"})
    fleet = Fleet(tmp_path / "fleet", edges=1)
    fleet.blob_gc = GcSettings(Retention(keep=2, grace=3600), interval=0)  # only on request
    async with fleet:
        await fleet.wait_applied(await fleet.apply(SOURCE))
        numbers = []
        for text in (b"<h1>v1</h1>", b"<h1>v2</h1>", b"<h1>v3</h1>"):
            (site / "index.html").write_bytes(text)
            result = await asyncio.to_thread(push_site, fleet.api, site, service="blog", env=fleet.env)
            numbers.append(result.release["number"])
        await wait_serving(fleet.edges, numbers[-1])
        old = time.time() - 7200
        for name, _ in list(fleet.blobs.stored()):
            set_age(fleet.blobs, name, old)
        fleet.blobs.forget_claims()  # nor claimed since (control/dirblobs.py Rule 4)

        code, out, err = await owncdn(fleet, "blobs", "gc", "--dry-run")
        assert code == 0, err
        assert out.startswith("would delete 1 of 4 blobs (11 B); kept 3 for 2 retained releases"), out
        assert "; 1 older releases would be pruned" in out, out
        code, out, err = await owncdn(fleet, "blobs", "gc")
        assert code == 0 and out.startswith("deleted 1 of 4 blobs (11 B)"), (out, err)
        assert "; 1 older releases were pruned" in out, out
        assert len(dict(fleet.blobs.stored())) == 3

        code, out, _ = await owncdn(fleet, "releases", "--service", "blog")
        assert code == 0 and column(out, "kept") == ["yes", "yes", "pruned"]  # release 1: kept no more, pruned

        code, out, err = await owncdn(fleet, "rollback", "--service", "blog", "--release", "2")
        assert (code, out.strip()) == (0, "production: blog serves release 2 again"), err
        await wait_serving(fleet.edges, 2)
        assert (await get(fleet.edges[0], "/")).body == b"<h1>v2</h1>"

        code, out, err = await owncdn(fleet, "rollback", "--service", "blog", "--release", "1")
        assert code == 1 and "can no longer be activated: blob GC dropped its manifest" in err, err
        assert "Traceback" not in err
        assert (await get(fleet.edges[0], "/")).body == b"<h1>v2</h1>"  # still serving what it served


async def test_a_push_whose_present_blob_a_pass_deleted_uploads_it_and_succeeds(tmp_path):
    """The race the grace period cannot cover on S3 (no claim refresh there): a blob
    the push found present goes before the release is created; the 409 makes the push
    upload it and create the release again."""
    site = write_site(tmp_path / "public", {"index.html": b"<h1>v1</h1>", "style.css": b"body {}"})
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.wait_applied(await fleet.apply(SOURCE))
        await asyncio.to_thread(push_site, fleet.api, site, service="blog", env=fleet.env)
        (site / "index.html").write_bytes(b"<h1>v2</h1>")
        style = [sha for sha, _ in fleet.blobs.stored() if fleet.blobs.size(sha) == len(b"body {}")]

        called = []

        def collected_meanwhile(_site, missing):
            called.append(missing)
            assert style[0] not in missing  # present when asked
            fleet.blobs.forget_claims()  # as on S3 (a directory store keeps what it claimed lately: dirblobs Rule 4)
            assert fleet.blobs.delete_older(style[0], cutoff=time.time() + 3600) == len(b"body {}")

        result = await asyncio.to_thread(push_site, fleet.api, site, service="blog", env=fleet.env,
                                         on_plan=collected_meanwhile)
        assert called and result.release["number"] == 2 and fleet.blobs.size(style[0]) == len(b"body {}")
