"""Blob GC on the control plane through the API: retained releases keep their blobs,
old unreferenced blobs go, a push in flight keeps what it uploaded or asked about."""

from __future__ import annotations

import os
import time

import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.blobgc import collect_blobs
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url
from owncdn.core.content.digest import digest
from owncdn.core.content.retention import Retention
from tests.control.test_api_releases import BUNDLE, SITE, Api, bundle, manifest, release_bundle, sha

HOURS_AGO = time.time() - 2 * 3600


@pytest.fixture(params=["put", "bundle"])
def api(tmp_path, request):
    """Blobs uploaded one by one (files), or each in a bundle of its own (a pack each:
    dirblobs Rule 5)."""
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    app = create_app(store, blobs=blobs)
    app.state.blob_retention = Retention(keep=2, grace=3600)
    with ApiServer(app) as server:
        a = Api(server.url, store, blobs)
        a.packed = request.param == "bundle"
        if a.packed:
            a.put = lambda data: a.ok("POST", "/v1/blobs/bundle", content=bundle(data)) and sha(data)
        a.ok("POST", "/v1/envs/production/versions", json={"source": SITE})
        yield a
        a.http.close()
    store.close()


def release(api, **files: bytes) -> int:
    for data in files.values():
        api.put(data)
    return api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(**files)})["number"]


def age(api, *datas: bytes) -> None:
    """As if uploaded two hours ago (older than the grace period): and so claimed no
    later than that either (dirblobs Rule 4; packed, Rule 5: its pack written then)."""
    age_names(api, *map(sha, datas))


def age_names(api, *names: str) -> None:
    for name in names:
        set_age(api.blobs, name, HOURS_AGO)
    api.blobs.forget_claims()


def set_age(blobs: DirBlobStore, name: str, when: float) -> None:
    """A blob as if stored at ``when`` and not claimed since then (its file's mtime, or
    its pack's writing and its last claim: dirblobs Rule 5)."""
    slot = blobs._packed.get(name)
    if slot is None:
        os.utime(blobs.path(name), (when, when))
    else:
        os.utime(slot.pack.index, (when, when))
        slot.pack.made, slot.claimed = when, 0.0


def packs(api) -> int:
    return len(list((api.blobs.root / "packs").glob("*.idx")))


def present(api, *datas: bytes) -> list[bool]:
    return [api.blobs.size(sha(d)) is not None for d in datas]


def gc(api, dry_run: bool = False) -> dict:
    return api.ok("POST", f"/v1/blobs/gc?dry_run={'true' if dry_run else 'false'}", "admin")


def test_gc_deletes_exactly_the_old_unreferenced_blobs_and_kept_releases_roll_back(api):
    shared, one, two, three = b"shared css", b"<h1>one</h1>", b"<h1>two</h1>", b"<h1>three</h1>"
    stray, in_flight = b"uploaded, never released", b"a push is about to name me"
    assert [release(api, site__css=shared, index__html=page) for page in (one, two, three)] == [1, 2, 3]
    api.put(stray)
    age(api, shared, one, two, three, stray)
    api.put(in_flight)  # young: a push in flight uploaded it and has not created its release yet

    dry = gc(api, dry_run=True)
    assert (dry["deleted"], dry["freed_bytes"], dry["young"]) == (2, len(one) + len(stray), 1)
    assert dry["pruned_releases"] == 1
    assert present(api, one, stray) == [True, True]  # a dry run deletes nothing
    assert api.store.get_release("production", "blog", 1).manifest is not None  # ... and prunes nothing
    assert packs(api) == (6 if api.packed else 0)

    done = gc(api)
    assert (done["stored"], done["referenced"], done["young"]) == (6, 3, 1)
    assert (done["deleted"], done["freed_bytes"], done["retained_releases"]) == (2, len(one) + len(stray), 2)
    assert done["pruned_releases"] == 1  # release 1's manifest (blobgc Rule 5)
    assert present(api, one, stray) == [False, False]
    assert present(api, shared, two, three, in_flight) == [True, True, True, True]
    assert packs(api) == (4 if api.packed else 0)  # theirs deleted
    again = gc(api)
    assert (again["deleted"], again["pruned_releases"]) == (0, 0)  # nothing more to do

    listed = api.ok("GET", "/v1/services/blog/releases", "read")
    assert [(r["number"], r["retained"], r["pruned"]) for r in listed] == [(3, True, False), (2, True, False),
                                                                           (1, False, True)]
    back = api.ok("POST", "/v1/services/blog/releases/2/activate")  # a retained release rolls back
    assert back["current"] and api.store.current_release_number("production", "blog") == 2
    assert api.http.get(f"/v1/blobs/{sha(two)}", headers={"Authorization": f"Bearer {api.tokens['read']}"}).content == two
    r = api.call("POST", "/v1/services/blog/releases/1/activate")  # pruned: refused, nothing moves
    assert r.status_code == 409 and r.json()["error"]["code"] == "release_pruned"
    assert "blob GC dropped its manifest" in r.json()["error"]["message"]
    assert api.store.current_release_number("production", "blog") == 2
    r = api.call("GET", "/v1/services/blog/releases/1/manifest", "read")
    assert r.status_code == 410 and r.json()["error"]["code"] == "release_pruned"
    assert api.call("GET", "/v1/services/blog/releases/3/manifest", "read").status_code == 200


def test_a_release_whose_blobs_went_otherwise_is_409_naming_them(api):
    one, two = b"<h1>one</h1>", b"<h1>two</h1>"
    assert [release(api, index__html=page) for page in (one, two)] == [1, 2]
    age(api, one)
    assert api.blobs.delete_older(sha(one), time.time()) == len(one)  # by hand, say: its manifest stays
    r = api.call("POST", "/v1/services/blog/releases/1/activate")
    assert r.status_code == 409 and r.json()["error"]["code"] == "release_pruned"
    assert "blob GC deleted 1 of its blobs" in r.json()["error"]["message"]
    assert r.json()["error"]["problems"] == [sha(one)]
    assert api.store.current_release_number("production", "blog") == 2


def test_blobs_named_by_sha256_and_by_blake3_are_collected_alike(api):
    """Release 1 pushed before BLAKE3 (SHA-256 names), 2 and 3 after it (BLAKE3, still
    naming release 1's stylesheet by its old name): retention and collection read both."""
    page, css = b"<h1>old</h1>", b"old css"
    assert release(api, index__html=page, site__css=css) == 1
    for text in (b"two", b"three"):
        api.ok("PUT", f"/v1/blobs/{digest(text)}", content=text)
        m = {"files": {"index.html": {"blob": digest(text), "size": len(text)}, "site.css": {"sha256": sha(css), "size": 7}}}
        api.ok("POST", "/v1/services/blog/releases", json={"manifest": m})
    api.ok("PUT", f"/v1/blobs/{digest(b'stray')}", content=b"stray")
    names = [sha(page), sha(css), digest(b"two"), digest(b"three"), digest(b"stray")]
    age_names(api, *names)
    done = gc(api)
    assert (done["stored"], done["referenced"], done["deleted"]) == (5, 3, 2)
    assert api.blobs.missing(names) == [sha(page), digest(b"stray")]


def test_a_release_a_node_serves_and_the_current_one_keep_their_blobs(api):
    edge = api.register("edge-1")
    pages = [b"p1", b"p2", b"p3", b"p4"]
    for page in pages:
        release(api, index__html=page)
    api.ok("POST", f"/v1/nodes/{edge}/releases", "edge-1", json={"service": "blog", "number": 1, "status": "serving"})
    api.ok("POST", "/v1/services/blog/releases/2/activate")  # rolled back to 2
    age(api, *pages)
    store = api.store
    report = collect_blobs(store, api.blobs, Retention(keep=1, grace=3600))
    assert report.deleted == 1 and present(api, *pages) == [True, True, False, True]  # 1 served, 2 current, 4 newest
    assert report.pruned_releases == 1
    assert [r.pruned_at is not None for r in store.list_releases("production", "blog")] == [False, True, False, False]


def test_a_push_that_asked_about_an_old_blob_keeps_it(api):
    old = b"pushed long ago, in no retained release"
    for page in (b"a", b"b", b"c"):
        release(api, index__html=page, extra=old if page == b"a" else page)
    age(api, old, b"a", b"b", b"c")
    missing = api.ok("POST", "/v1/blobs/missing", json={"hashes": [sha(old), sha(b"new")]})["missing"]
    assert missing == [sha(b"new")]  # present: the push will not upload it, so asking claimed it
    assert gc(api)["deleted"] == 1 and present(api, old, b"a") == [True, False]
    api.put(b"new")
    m = manifest(index__html=b"new", extra=old)
    assert api.ok("POST", "/v1/services/blog/releases", json={"manifest": m})["number"] == 4


def test_a_release_bundle_claims_the_old_blobs_it_names_while_its_new_ones_arrive(api):
    old = b"pushed long ago, in no retained release"
    for page in (b"a", b"b", b"c"):
        release(api, index__html=page, extra=old if page == b"a" else page)
    age(api, old, b"a")
    m = manifest(index__html=b"new", extra=old)
    made = api.ok("POST", "/v1/services/blog/releases/bundle", content=release_bundle(m, b"new"), headers=BUNDLE)
    assert made["number"] == 4
    assert dict(api.blobs.stored())[sha(old)].mtime > HOURS_AGO + 3600  # claimed: young again
    assert gc(api)["deleted"] == 1 and present(api, old, b"a", b"new") == [True, False, True]


def test_a_release_naming_a_blob_gc_deleted_is_409_push_again(api):
    for page in (b"a", b"b", b"c"):
        release(api, index__html=page)
    age(api, b"a")
    assert gc(api)["deleted"] == 1
    r = api.call("POST", "/v1/services/blog/releases", json={"manifest": manifest(index__html=b"a")})
    assert r.status_code == 409 and r.json()["error"]["code"] == "missing_blobs"
    assert "owncdn push" in r.json()["error"]["message"] and r.json()["error"]["problems"] == [sha(b"a")]


def test_gc_needs_an_admin_token(api):
    assert api.call("POST", "/v1/blobs/gc", token=None).status_code == 401
    for token in ("deploy", "read", "purge"):
        r = api.call("POST", "/v1/blobs/gc", token=token)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_the_periodic_pass_collects_and_keeps_running(tmp_path):
    import asyncio

    from owncdn.control.blobgc import run_periodically

    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    blobs.put(sha(b"stray"), b"stray")
    os.utime(blobs.path(sha(b"stray")), (HOURS_AGO, HOURS_AGO))
    task = asyncio.get_running_loop().create_task(
        run_periodically(store, blobs, Retention(keep=1, grace=3600), interval=3600, first_delay=0))
    try:
        while blobs.size(sha(b"stray")) is not None:
            assert not task.done(), task
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        store.close()


def test_a_release_pruned_while_being_activated_stays_inactive(api, monkeypatch):
    """A GC pass prunes release 1 after the activation read it, before it moved the pointer
    (releasestore Rule 10): the activation is refused, the current release keeps its manifest."""
    for page in (b"a", b"b"):
        release(api, index__html=page)
    read = api.store.get_release

    def then_pruned(env, service, number):
        found = read(env, service, number)
        assert api.store.prune_manifests({(env, service): [number]}) == 1
        return found

    monkeypatch.setattr(api.store, "get_release", then_pruned)
    r = api.call("POST", "/v1/services/blog/releases/1/activate")
    assert r.status_code == 409 and r.json()["error"]["code"] == "release_pruned"
    monkeypatch.undo()
    assert api.store.current_release_number("production", "blog") == 2
    assert api.store.get_release("production", "blog", 2).manifest is not None
