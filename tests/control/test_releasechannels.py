"""The ``release`` channel: the event carrying a release's new blobs (control/api/releases.py
Rule 10, releasechannels.py Rule 6) through the REST API (uvicorn on loopback, SQLite),
and the streams one wake-up wakes sharing one read of the current releases (Rule 4)."""

from __future__ import annotations

import base64
import json
from hashlib import sha256
import threading
import time
from types import SimpleNamespace

import httpx
import orjson
import pytest

import owncdn.control.api.releases as releases_api
from owncdn.control.api import ApiServer, create_app
from owncdn.control.api.releasechannels import ReleaseChannel
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url
from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest as blob_name

SITE = """\
version: 1
services:
  - name: inl
    hostnames: [inl.example.com]
    mode: push
"""
EDGE = SimpleNamespace(kind="edge", env="production")


def manifest(**files: bytes) -> dict:
    return {"files": {path: {"blob": blob_name(data), "size": len(data)} for path, data in files.items()}}


def canonical(m: dict) -> bytes:
    return json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def release_bundle(m: dict, *blobs: bytes) -> bytes:
    first = canonical(m)
    return (header(sha256(first).hexdigest(), len(first)) + first
            + b"".join(header(blob_name(blob), len(blob)) + blob for blob in blobs))


@pytest.fixture
def api(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    app = create_app(store, blobs=blobs)
    _, token = store.create_token("deploy", {"deploy"})
    with ApiServer(app) as server, httpx.Client(base_url=server.url, timeout=10,
                                                headers={"Authorization": f"Bearer {token}"}) as http:
        assert http.post("/v1/envs/production/versions", json={"source": SITE}).status_code < 300

        def create(m: dict, *blobs: bytes) -> dict:
            r = http.post("/v1/services/inl/releases/bundle", content=release_bundle(m, *blobs),
                          headers={"Content-Type": "application/x-owncdn-bundle"})
            assert r.status_code == 201, r.text
            return r.json()

        def event() -> dict:
            channel = next(c for c in app.state.owncdn.channels if isinstance(c, ReleaseChannel))
            return channel.read(app.state.owncdn, EDGE)["inl"][1]

        yield SimpleNamespace(create=create, event=event, ctx=app.state.owncdn, http=http)
    store.close()


def test_a_release_event_carries_the_blobs_new_since_the_release_before(api):
    api.create(manifest(index=b"one", style=b"same"), b"one", b"same")
    made = api.create(manifest(index=b"two", style=b"same", extra=b"three"), b"two", b"three")
    data = api.event()
    assert data["number"] == made["number"]
    assert data["blobs"] == {blob_name(b"two"): base64.b64encode(b"two").decode(),
                             blob_name(b"three"): base64.b64encode(b"three").decode()}
    # the same release read back from the store (another replica, a restart): no blobs, edges fetch
    assert "blobs" not in ReleaseChannel().read(api.ctx, EDGE)["inl"][1]


def test_a_change_larger_than_the_limit_or_an_unchanged_one_carries_no_blobs(api, monkeypatch):
    api.create(manifest(index=b"one"), b"one")
    monkeypatch.setattr(releases_api, "INLINE_EVENT_BYTES", 4)
    api.create(manifest(index=b"fives"), b"fives")  # 5 bytes new
    assert "blobs" not in api.event()
    api.create(manifest(index=b"four"), b"four")  # 4 bytes new: carried
    assert api.event()["blobs"] == {blob_name(b"four"): base64.b64encode(b"four").decode()}
    api.create(manifest(index=b"four", copy=b"four"))  # nothing new
    assert "blobs" not in api.event()


def test_the_new_blobs_are_read_before_the_release_is_stored(api, monkeypatch):
    """The blobs are read before the release is stored: from then on its event data
    holds them (``expect_manifest``), for a stream woken before the channel hears that
    it was stored; one that read the store would send no blobs (and its whole manifest)."""
    order = []
    real_inline, real_add = releases_api._inline_blobs, api.ctx.store.add_release
    monkeypatch.setattr(releases_api, "_inline_blobs", lambda *a: order.append("blobs read") or real_inline(*a))
    monkeypatch.setattr(api.ctx.store, "add_release", lambda *a, **k: order.append("stored") or real_add(*a, **k))
    api.create(manifest(index=b"one"), b"one")
    api.create(manifest(index=b"two"), b"two")
    assert order == ["blobs read", "stored"] * 2
    assert api.event()["blobs"] == {blob_name(b"two"): base64.b64encode(b"two").decode()}


def test_streams_woken_together_share_one_read_of_the_current_releases():
    reads = []

    def current_releases(env):
        reads.append(env)
        time.sleep(0.05)  # the others arrive while this read runs
        return [SimpleNamespace(service="inl", number=1, manifest_id="x")]

    ctx = SimpleNamespace(store=SimpleNamespace(current_releases=current_releases),
                          hub=SimpleNamespace(generation=lambda topic: 7))
    channel = ReleaseChannel()
    channel.expect("production", "inl", "x", {"files": {}})
    channel.remember("production", "inl", 1, "x")
    got = []
    streams = [threading.Thread(target=lambda: got.append(channel.read(ctx, EDGE))) for _ in range(3)]
    for t in streams:
        t.start()
    for t in streams:
        t.join()
    assert reads == ["production"] and len(got) == 3 and all(g["inl"][0] == 1 for g in got)


def test_a_new_version_decides_at_once_whether_a_service_takes_releases(api):
    """releases.py Rule 2 with the services of each version read once: the next version counts."""
    api.create(manifest(index=b"one"), b"one")
    pulled = SITE.replace("mode: push", "origins: [https://origin.example.com]")
    assert api.http.post("/v1/envs/production/versions", json={"source": pulled}).status_code < 300
    r = api.http.post("/v1/services/inl/releases", json={"manifest": manifest(index=b"one")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_a_push_service"
    assert api.http.post("/v1/envs/production/versions", json={"source": SITE}).status_code < 300
    assert api.http.post("/v1/services/inl/releases", json={"manifest": manifest(index=b"one")}).status_code == 201


def _site(n: int, changed: int = 0) -> dict[str, bytes]:
    return {f"p{i}": (b"new %d" if i < changed else b"page %d") % i for i in range(n)}


@pytest.mark.parametrize("files_before, files_after, as_changes", [
    (_site(8), _site(8, changed=1), True),          # one file of eight: its change alone
    (_site(8), _site(8, changed=2), True),          # a quarter: still changes
    (_site(8), _site(8, changed=3), False),         # more than a quarter: the whole manifest
    (_site(8), {**_site(8), "added": b"x"}, True),  # a file added
    ({k: v for k, v in _site(9).items() if k != "p3"} | {"p3": b"page 3"}, _site(8), True),  # a file removed
    (None, _site(8), False),                        # the first release: nothing to change from
])
def test_a_release_made_right_after_another_goes_as_its_changes_when_they_are_few(api, files_before, files_after,
                                                                                 as_changes):
    if files_before is not None:
        api.create(manifest(**files_before), *set(files_before.values()))
    made = api.create(manifest(**files_after), *set(files_after.values()))
    data = api.event()
    assert data["id"] == made["id"]
    if not as_changes:
        assert "changes" not in data and "base" not in data
        assert json.loads(orjson.dumps(data["manifest"])) == manifest(**files_after)
        return
    assert "manifest" not in data
    assert data["base"] == sha256(canonical(manifest(**files_before))).hexdigest()
    before, after = manifest(**files_before)["files"], manifest(**files_after)["files"]
    assert data["changes"] == {**{p: e for p, e in after.items() if before.get(p) != e},
                               **{p: None for p in before if p not in after}}
    rebuilt = {p: e for p, e in {**before, **data["changes"]}.items() if e is not None}
    assert sha256(canonical({"files": rebuilt})).hexdigest() == made["id"]
    # read back from the store (another replica, a restart): the whole manifest
    assert "changes" not in ReleaseChannel().read(api.ctx, EDGE)["inl"][1]


def test_a_release_manifest_is_answered_whole_in_its_canonical_encoding(api):
    files = _site(3)
    made = api.create(manifest(**files), *set(files.values()))
    r = api.http.get(f"/v1/services/inl/releases/{made['number']}/manifest")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.content == canonical(manifest(**files))
    assert sha256(r.content).hexdigest() == made["id"]
    missing = api.http.get(f"/v1/services/inl/releases/{made['number'] + 1}/manifest")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    anonymous = httpx.get(f"{str(api.http.base_url).rstrip('/')}/v1/services/inl/releases/{made['number']}/manifest", timeout=10)
    assert anonymous.status_code == 401


def changes_bundle(name: str, changes: dict, *blobs: bytes) -> bytes:
    record = json.dumps(changes, separators=(",", ":")).encode()
    return (header(name, len(record)) + record
            + b"".join(header(blob_name(blob), len(blob)) + blob for blob in blobs))


@pytest.mark.parametrize("base_is, changes, status, code", [
    ("last", {"p1": {"blob": blob_name(b"one"), "size": 3}}, 201, None),
    ("last", {"p1": {"blob": blob_name(b"one"), "size": 3}, "p2": None}, 409, "changes_mismatch"),  # not that id
    ("last", {"gone": None}, 409, "changes_mismatch"),
    ("last", {"../x": {"blob": blob_name(b"one"), "size": 3}}, 409, "changes_mismatch"),
    ("last", ["not", "changes"], 409, "changes_mismatch"),
    ("first", {"p1": {"blob": blob_name(b"one"), "size": 3}}, 409, "unknown_base"),  # not the last created here
])
def test_a_release_bundle_may_carry_the_changes_from_the_last_release(api, base_is, changes, status, code):
    first = api.create(manifest(**_site(4)), *set(_site(4).values()))
    last = api.create(manifest(**_site(5)), *set(_site(5).values()))
    want = {**_site(5), "p1": b"one"}
    name = sha256(canonical(manifest(**want))).hexdigest()
    base = {"first": first, "last": last}[base_is]["id"]
    r = api.http.post("/v1/services/inl/releases/bundle", params={"base": base},
                      content=changes_bundle(name, changes, b"one"),
                      headers={"Content-Type": "application/x-owncdn-bundle"})
    assert r.status_code == status, r.text
    numbers = [x["number"] for x in api.http.get("/v1/services/inl/releases").json()]
    if code is not None:
        assert r.json()["error"]["code"] == code
        assert numbers == [2, 1]  # nothing stored
        return
    assert r.json()["id"] == name and numbers == [3, 2, 1]
    stored = api.http.get(f"/v1/services/inl/releases/{r.json()['number']}/manifest")
    assert stored.content == canonical(manifest(**want))
    assert api.event()["changes"] == changes and api.event()["base"] == last["id"]


def test_a_release_read_between_its_storing_and_remember_goes_as_expected_not_from_the_store():
    """Rule 3: a stream that sees the new current release before ``remember`` sends the
    data given to ``expect`` (here its changes), not the manifest read from the store."""
    def from_store(*args):
        raise AssertionError("read from the store")

    ctx = SimpleNamespace(store=SimpleNamespace(
        current_releases=lambda env: [SimpleNamespace(service="svc", number=4, id="new")], get_release=from_store),
        hub=SimpleNamespace(generation=lambda topic: 1))
    channel = ReleaseChannel()
    channel.expect("production", "svc", "new", {"files": {}}, changes=("old", {"a.html": None}))
    want = {"service": "svc", "number": 4, "id": "new", "base": "old", "changes": {"a.html": None}}
    assert channel.read(ctx, EDGE) == {"svc": (4, want)}
    channel.remember("production", "svc", 4, "new")
    assert channel.read(ctx, EDGE) == {"svc": (4, want)}  # now by its number
    assert not channel._expected


def test_after_a_restart_the_newest_release_read_back_is_the_base_of_changes(api):
    """Rule 9: a control plane that holds no manifest of the service (it restarted)
    reads the newest release back, so the push and the edges' event go as changes."""
    api.create(manifest(**_site(4)), *set(_site(4).values()))
    last = api.create(manifest(**_site(5)), *set(_site(5).values()))
    api.ctx.recent_manifests.clear()  # as after a restart
    want = {**_site(5), "p1": b"one"}
    changes = {"p1": {"blob": blob_name(b"one"), "size": 3}}
    name = sha256(canonical(manifest(**want))).hexdigest()
    r = api.http.post("/v1/services/inl/releases/bundle", params={"base": last["id"]},
                      content=changes_bundle(name, changes, b"one"),
                      headers={"Content-Type": "application/x-owncdn-bundle"})
    assert r.status_code == 201, r.text
    assert api.event()["changes"] == changes and api.event()["base"] == last["id"]
    api.ctx.recent_manifests.clear()
    r = api.http.post("/v1/services/inl/releases/bundle", params={"base": last["id"]},  # not the newest now
                      content=changes_bundle(name, changes, b"one"),
                      headers={"Content-Type": "application/x-owncdn-bundle"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "unknown_base"


def test_a_release_remembered_without_its_expected_data_is_read_from_the_store(api):
    """Rule 3: never an event made up without a manifest."""
    made = api.create(manifest(index=b"one"), b"one")
    channel = ReleaseChannel()
    channel.remember("production", "inl", made["number"], made["id"])  # nothing was expected
    data = channel.read(api.ctx, EDGE)["inl"][1]
    assert data["manifest"] == manifest(index=b"one") and data["number"] == made["number"]
