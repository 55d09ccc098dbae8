"""Blobs and releases through the REST API (uvicorn on loopback, a real SQLite store)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from types import SimpleNamespace

import httpx
import orjson
import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.api.releasechannels import ReleaseChannel, ReleaseReadyChannel, UpcomingChannel
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url
from owncdn.core.content.bundle import header
from owncdn.core.content import parse_manifest
from owncdn.core.content.digest import digest
from owncdn.packs import PackWriter

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    mode: push
  - name: pulled
    hostnames: [pulled.example.com]
    origins: [https://origin.example.com]
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BUNDLE = {"Content-Type": "application/x-owncdn-bundle"}


def canonical(m: dict) -> bytes:
    return json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def release_bundle(m: dict, *blobs: bytes, encoded: bytes | None = None, name: str | None = None) -> bytes:
    """A manifest record (canonical unless ``encoded`` is given) and blob records."""
    first = canonical(m) if encoded is None else encoded
    return (header(name or sha(first), len(first)) + first
            + b"".join(header(sha(blob), len(blob)) + blob for blob in blobs))


def manifest(**files: bytes) -> dict:
    return {"files": {path.replace("__", "/"): {"sha256": sha(data), "size": len(data)} for path, data in files.items()}}


class Api:
    def __init__(self, url: str, store: Store, blobs: DirBlobStore) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.store, self.blobs = store, blobs
        self.tokens = {name: store.create_token(name, scopes)[1] for name, scopes in [
            ("admin", {"admin"}), ("read", {"read"}), ("deploy", {"deploy"}), ("purge", {"purge"}),
            ("bootstrap", {"node"})]}

    def call(self, method: str, path: str, token: str | None = "deploy", **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return self.http.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, token: str | None = "deploy", **kw):
        r = self.call(method, path, token, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def put(self, data: bytes) -> str:
        self.ok("PUT", f"/v1/blobs/{sha(data)}", content=data)
        return sha(data)

    def register(self, name: str, kind: str = "edge", location: str = "fra") -> str:
        body = {"name": name, "kind": kind, "location": location, "env": "production", "address": "192.0.2.1"}
        got = self.ok("POST", "/v1/nodes/register", "bootstrap", json=body)
        self.tokens[name] = got["token"]
        return got["node_id"]


@pytest.fixture
def api(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    app = create_app(store, blobs=blobs)
    with ApiServer(app) as server:
        a = Api(server.url, store, blobs)
        a.ctx, a.app = app.state.owncdn, app
        a.ok("POST", "/v1/envs/production/versions", json={"source": SITE})
        yield a
        a.http.close()
    store.close()


# -- auth ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/blobs/missing"),
    ("POST", "/v1/blobs/bundle"),
    ("POST", "/v1/blobs/fetch"),
    ("PUT", f"/v1/blobs/{'a' * 64}"),
    ("GET", f"/v1/blobs/{'a' * 64}"),
    ("POST", "/v1/services/blog/releases"),
    ("GET", "/v1/services/blog/releases"),
    ("POST", "/v1/services/blog/releases/1/activate"),
    ("POST", "/v1/services/blog/releases/bundle"),
    ("GET", "/v1/services/blog/releases/1/status"),
    ("POST", "/v1/services/blog/releases/upcoming"),
    ("POST", "/v1/nodes/n-1/releases"),
])
def test_no_token_is_401(api, method, path):
    r = api.call(method, path, token=None, json={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("token, method, path", [
    ("read", "POST", "/v1/blobs/missing"),
    ("read", "POST", "/v1/blobs/bundle"),
    ("deploy", "POST", "/v1/blobs/fetch"),
    ("bootstrap", "POST", "/v1/blobs/fetch"),
    ("purge", "PUT", f"/v1/blobs/{sha(b'x')}"),
    ("deploy", "GET", f"/v1/blobs/{sha(b'x')}"),
    ("bootstrap", "GET", f"/v1/blobs/{sha(b'x')}"),
    ("read", "POST", "/v1/services/blog/releases"),
    ("purge", "GET", "/v1/services/blog/releases"),
    ("read", "POST", "/v1/services/blog/releases/1/activate"),
    ("read", "POST", "/v1/services/blog/releases/bundle"),
    ("purge", "GET", "/v1/services/blog/releases/1/status"),
    ("read", "POST", "/v1/services/blog/releases/upcoming"),
    ("read", "PUT", "/v1/services/blog/releases/1/comment"),
    ("deploy", "POST", "/v1/nodes/n-1/releases"),
])
def test_missing_scope_is_403(api, token, method, path):
    body = {"hashes": []} if path.endswith(("missing", "fetch", "bundle")) else {"manifest": {"files": {}}}
    r = api.call(method, path, token=token, json=body) if method == "POST" else api.call(method, path, token=token, content=b"x")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"


# -- blobs ----------------------------------------------------------------------------------

def test_missing_then_put_then_get_with_ranges(api):
    data = bytes(range(256)) * 4000
    assert api.ok("POST", "/v1/blobs/missing", json={"hashes": [sha(data), sha(data)]}) == {"missing": [sha(data)], "partial": {}}
    assert api.put(data) == sha(data)
    assert api.put(data) == sha(data)  # idempotent
    assert api.ok("POST", "/v1/blobs/missing", json={"hashes": [sha(data)]}) == {"missing": [], "partial": {}}
    whole = api.call("GET", f"/v1/blobs/{sha(data)}", "read")
    assert whole.status_code == 200 and whole.content == data and whole.headers["etag"] == f'"{sha(data)}"'
    part = api.call("GET", f"/v1/blobs/{sha(data)}", "read", headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == data[1000:]
    assert part.headers["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    middle = api.call("GET", f"/v1/blobs/{sha(data)}", "read", headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == data[10:20]
    past = api.call("GET", f"/v1/blobs/{sha(data)}", "read", headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    ignored = api.call("GET", f"/v1/blobs/{sha(data)}", "read", headers={"Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200 and ignored.content == data


def test_a_node_reads_blobs_with_its_own_token(api):
    api.register("edge-1")
    data = b"for the edge"
    api.put(data)
    assert api.call("GET", f"/v1/blobs/{sha(data)}", "edge-1").content == data
    assert api.call("GET", f"/v1/blobs/{sha(b'nope')}", "edge-1").status_code == 404


def test_hash_mismatch_is_400_and_stores_nothing(api):
    r = api.call("PUT", f"/v1/blobs/{sha(b'claimed')}", content=b"actual")
    assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch"
    assert api.blobs.missing([sha(b"claimed")]) == [sha(b"claimed")]
    assert [p for p in (api.blobs.root / "tmp").rglob("*") if not p.is_dir()] == []


def bundle(*blobs: bytes) -> bytes:
    return b"".join(f"{sha(b)} {len(b)}\n".encode() + b for b in blobs)


# -- blob names: SHA-256 (pushed before BLAKE3, what this file's helpers name) and BLAKE3 ------

def b3_manifest(**files: bytes) -> dict:
    return {"files": {path: {"blob": digest(data), "size": len(data)} for path, data in files.items()}}


def test_sha256_and_blake3_releases_side_by_side_are_served_and_rolled_back(api):
    """A release an older client pushed (SHA-256 names) and BLAKE3 ones after it: each
    blob is checked with the hash its name says, served by its name, and rolling back
    to the old release needs nothing uploaded again."""
    api.put(b"<h1>old</h1>")
    api.put(b"css")
    legacy = manifest(index__html=b"<h1>old</h1>", **{"a.css": b"css"})
    old = api.ok("POST", "/v1/services/blog/releases", json={"manifest": legacy})
    assert api.ok("POST", "/v1/blobs/missing", json={"hashes": [digest(b"css"), sha(b"css"), digest(b"new")]}) == {
        "missing": [digest(b"css"), digest(b"new")], "partial": {}}
    stored = api.ok("PUT", f"/v1/blobs/{digest(b'<h1>new</h1>')}", content=b"<h1>new</h1>")
    assert stored == {"sha256": digest(b"<h1>new</h1>"), "size": 12}
    mixed = {"files": {**manifest(**{"a.css": b"css"})["files"], **b3_manifest(**{"index.html": b"<h1>new</h1>"})["files"]}}
    assert api.ok("POST", "/v1/services/blog/releases", json={"manifest": mixed})["number"] == 2  # keeps a.css's old blob
    m3 = b3_manifest(**{"index.html": b"<h1>3</h1>", "a.css": b"css"})
    body = release_bundle(m3) + b"".join(header(digest(d), len(d)) + d for d in (b"<h1>3</h1>", b"css"))
    third = api.ok("POST", "/v1/services/blog/releases/bundle", content=body, headers=BUNDLE)
    assert third["number"] == 3 and api.blobs.missing([digest(b"<h1>3</h1>"), digest(b"css")]) == []
    api.register("edge-1")
    for name, data in ((sha(b"<h1>old</h1>"), b"<h1>old</h1>"), (digest(b"<h1>3</h1>"), b"<h1>3</h1>")):
        got = api.call("GET", f"/v1/blobs/{name}", "edge-1")
        assert (got.status_code, got.content, got.headers["etag"]) == (200, data, f'"{name}"')
    fetched = api.call("POST", "/v1/blobs/fetch", "edge-1", json={"hashes": [sha(b"css"), digest(b"css")]})
    # the packed one first: a download goes as its blobs lie in the packs (dirblobs Rule 6)
    assert fetched.content == header(digest(b"css"), 3) + b"css" + header(sha(b"css"), 3) + b"css"
    back = api.ok("POST", f"/v1/services/blog/releases/{old['number']}/activate")
    assert back["current"] and back["id"] == old["id"] == sha(canonical(legacy))  # its id as before BLAKE3


@pytest.mark.parametrize("name", [digest(b"claimed"), digest(b"actual")[:64], sha(b"actual") + "-b3"])
def test_a_wrong_blake3_body_is_refused(api, name):
    """A body whose BLAKE3 is not the name (or a name of the other hash's digest) is
    refused as a single upload and inside a bundle, storing nothing."""
    r = api.call("PUT", f"/v1/blobs/{name}", content=b"actual")
    assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch"
    r = api.call("POST", "/v1/blobs/bundle", content=header(digest(b"fine"), 4) + b"fine" + header(name, 6) + b"actual")
    assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch"
    assert api.blobs.missing([name, digest(b"fine")]) == [name]
    m = b3_manifest(x=b"actual")
    r = api.call("POST", "/v1/services/blog/releases/bundle", content=release_bundle(m) + header(name, 6) + b"actual",
                 headers=BUNDLE)
    assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch"
    assert api.ok("GET", "/v1/services/blog/releases", "read") == []


@pytest.mark.parametrize("name", ["a" * 64 + "-b2", "A" * 64 + "-b3", "blake3:" + "a" * 64, "a" * 64 + "-b3x"])
def test_names_that_are_not_blob_names_are_refused(api, name):
    assert api.call("PUT", f"/v1/blobs/{name}", content=b"x").status_code == 422
    for hashes in ([name], [digest(b"fine"), name]):  # alone, and after a BLAKE3 name (checked all at once)
        r = api.call("POST", "/v1/blobs/missing", json={"hashes": hashes})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_hash"


def test_a_bundle_stores_each_blob_and_fetch_returns_them(api):
    big = bytes(range(256)) * 8000  # over the size stored in one step
    r = api.ok("POST", "/v1/blobs/bundle", content=bundle(b"one", b"", big, b"one"))
    assert [b["size"] for b in r["stored"]] == [3, 0, len(big), 3] and r["bytes"] == 2 * 3 + len(big)
    assert api.blobs.missing([sha(b"one"), sha(b""), sha(big)]) == []
    api.register("edge-1")
    got = api.call("POST", "/v1/blobs/fetch", "edge-1", json={"hashes": [sha(big), sha(b"one"), sha(big)]})
    assert got.status_code == 200 and got.headers["content-type"] == "application/x-owncdn-bundle"
    assert got.content == bundle(b"one", big)  # as they lie in the upload's pack (dirblobs Rule 6), each once
    r = api.call("POST", "/v1/blobs/fetch", "read", json={"hashes": [sha(b"one"), sha(b"nope")]})
    assert r.status_code == 404 and r.json()["error"]["problems"] == [sha(b"nope")]
    assert api.call("POST", "/v1/blobs/fetch", "read", json={"hashes": ["../x"]}).status_code == 422


@pytest.mark.parametrize("body, code, why", [
    (bundle(b"good") + f"{sha(b'claimed')} 3\n".encode() + b"bad", "hash_mismatch", "the 1 blob(s) before it were stored"),
    (b"not a bundle\n", "bad_bundle", "nothing was stored"),
    (bundle(b"good") + f"{sha(b'cut')} 3\n".encode() + b"cu", "bad_bundle", "ends inside a record"),
])
def test_a_bad_bundle_is_400_and_keeps_what_came_before(api, body, code, why):
    r = api.call("POST", "/v1/blobs/bundle", content=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == code and why in r.json()["error"]["message"]
    assert api.blobs.missing([sha(b"claimed"), sha(b"cut")]) == [sha(b"claimed"), sha(b"cut")]
    if code == "hash_mismatch" or "ends inside" in why:
        assert api.blobs.missing([sha(b"good")]) == []  # what came before the bad record is stored
    assert [p for p in (api.blobs.root / "tmp").rglob("*") if not p.is_dir()] == []


def test_a_bundle_of_many_groups_is_made_durable_once(api, monkeypatch):
    """Read raw, the bundle's blobs go to one pack committed once (dirblobs Rule 5);
    through ASGI, its groups are committed together (``commit_many``)."""
    commits, real, real_pack = [], api.blobs.commit_many, PackWriter.commit

    def counted(written):
        commits.append(len(written))
        real(written)

    def counted_pack(writer):
        kept = real_pack(writer)
        commits.append(len(kept))
        return kept

    monkeypatch.setattr(api.blobs, "commit_many", counted)
    monkeypatch.setattr(PackWriter, "commit", counted_pack)
    blobs = [f"blob {i}".encode() * 50 for i in range(200)]  # more than 3 groups of 64
    r = api.ok("POST", "/v1/blobs/bundle", content=bundle(*blobs))
    assert len(r["stored"]) == 200 and commits == [200]
    assert api.blobs.missing([sha(b) for b in blobs]) == []
    assert [p for p in (api.blobs.root / "tmp").rglob("*") if not p.is_dir()] == []


@pytest.mark.parametrize("name", ["A" * 64, "a" * 63, "../x"])
def test_bad_blob_names(api, name):
    assert api.call("PUT", f"/v1/blobs/{name}", content=b"x").status_code in (404, 422)
    r = api.call("POST", "/v1/blobs/missing", json={"hashes": [name]})
    assert r.status_code == 422


def test_without_a_blob_store_it_says_so(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    _, token = store.create_token("d", {"deploy"})
    with ApiServer(create_app(store)) as server:
        r = httpx.post(f"{server.url}/v1/blobs/missing", json={"hashes": []}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_blob_store"
    store.close()


# -- releases ---------------------------------------------------------------------------------

def test_409_lists_missing_blobs_then_create_list_and_rollback(api):
    m1 = manifest(index__html=b"<h1>one</h1>", about__index__html=b"about")
    r = api.call("POST", "/v1/services/blog/releases?env=production", json={"manifest": m1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "missing_blobs"
    assert sorted(r.json()["error"]["problems"]) == sorted({sha(b"<h1>one</h1>"), sha(b"about")})
    assert api.ok("GET", "/v1/services/blog/releases", "read") == []  # nothing was stored
    api.put(b"<h1>one</h1>")
    api.put(b"about")
    first = api.ok("POST", "/v1/services/blog/releases?env=production", json={"manifest": m1})
    assert first["number"] == 1 and first["files"] == 2 and first["bytes"] == 17
    api.put(b"<h1>two</h1>")
    m2 = manifest(index__html=b"<h1>two</h1>", about__index__html=b"about")
    second = api.ok("POST", "/v1/services/blog/releases", json={"manifest": m2})
    assert second["number"] == 2 and second["id"] != first["id"]
    listed = api.ok("GET", "/v1/services/blog/releases?env=production", "read")
    assert [(r["number"], r["current"], r["files"]) for r in listed] == [(2, True, 2), (1, False, 2)]
    back = api.ok("POST", "/v1/services/blog/releases/1/activate?env=production")
    assert back["number"] == 1 and back["current"]
    assert [r["current"] for r in api.ok("GET", "/v1/services/blog/releases", "read")] == [False, True]
    r = api.call("POST", "/v1/services/blog/releases/7/activate")
    assert r.status_code == 404 and "newest is 2" in r.json()["error"]["message"]


def test_a_release_keeps_the_comment_it_was_created_with(api):
    """Rule 16: ``?comment=`` on both creates, listed with the release."""
    api.put(b"<h1>one</h1>")
    m1 = manifest(index__html=b"<h1>one</h1>")
    first = api.ok("POST", "/v1/services/blog/releases", json={"manifest": m1},
                   params={"env": "production", "comment": "v1.0: first – with ünïcode & a ?query"})
    m2 = manifest(index__html=b"<h1>two</h1>")
    second = api.ok("POST", "/v1/services/blog/releases/bundle", content=release_bundle(m2, b"<h1>two</h1>"),
                    headers=BUNDLE, params={"comment": "v1.1"})
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": m1})  # none given: none kept
    listed = api.ok("GET", "/v1/services/blog/releases", "read")
    assert [(r["number"], r["comment"]) for r in listed] == [
        (3, ""), (second["number"], "v1.1"), (first["number"], "v1.0: first – with ünïcode & a ?query")]
    for bad in ("x" * 1001, "two\nlines", "a\x00b"):
        r = api.call("POST", "/v1/services/blog/releases", json={"manifest": m1}, params={"comment": bad})
        assert r.status_code == 422, r.text
    assert len(api.ok("GET", "/v1/services/blog/releases", "read")) == 3  # nothing stored for those


def test_a_release_comment_can_be_replaced_and_nothing_else_changes(api):
    """Rule 16: ``PUT .../releases/{n}/comment``: a typo mended, or why it was rolled back."""
    api.put(b"<h1>one</h1>")
    m1 = manifest(index__html=b"<h1>one</h1>")
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": m1}, params={"comment": "v1.0 (typo)"})
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": m1})
    before = api.ok("GET", "/v1/services/blog/releases", "read")
    got = api.ok("PUT", "/v1/services/blog/releases/1/comment", json={"comment": "v1.0: rolled back – ünïcode"})
    assert got == {**before[1], "comment": "v1.0: rolled back – ünïcode"}
    after = api.ok("GET", "/v1/services/blog/releases", "read")
    assert after == [before[0], got]  # the current one (2) as it was
    assert api.ok("PUT", "/v1/services/blog/releases/1/comment", json={"comment": ""})["comment"] == ""
    for body in ({"comment": "x" * 1001}, {"comment": "two\nlines"}, {"comment": 3}, {}, {"comment": "a", "x": 1}):
        r = api.call("PUT", "/v1/services/blog/releases/1/comment", json=body)
        assert r.status_code == 422, (body, r.text)
    r = api.call("PUT", "/v1/services/blog/releases/9/comment", json={"comment": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.call("PUT", "/v1/services/blog/releases/1/comment", params={"env": "staging"}, json={"comment": "x"})
    assert r.status_code == 404
    assert api.ok("GET", "/v1/services/blog/releases", "read")[1]["comment"] == ""


def test_only_push_services_of_the_latest_version(api):
    api.put(b"x")
    body = {"manifest": manifest(a=b"x")}
    r = api.call("POST", "/v1/services/pulled/releases", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_a_push_service"
    r = api.call("POST", "/v1/services/nope/releases", json=body)
    assert r.status_code == 404 and "blog, pulled" in r.json()["error"]["message"]
    r = api.call("POST", "/v1/services/blog/releases?env=staging", json=body)  # pushable Rule 2
    assert r.status_code == 404 and r.json()["error"]["message"].startswith(
        "environment 'staging' has no config version yet (those with one: production): mistyped, or apply")
    r = api.call("GET", "/v1/services/blog/releases?env=prodution", "read")
    assert r.status_code == 404 and "'prodution' has no config version yet (those with one: production)" \
        in r.json()["error"]["message"]


def test_listing_the_releases_of_a_service_no_version_names_is_404_unless_it_has_some(api):
    assert api.ok("GET", "/v1/services/blog/releases", "read") == []  # a push service with no release yet
    r = api.call("GET", "/v1/services/blgo/releases", "read")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_service"
    assert "no service 'blgo'" in r.json()["error"]["message"] and "blog, pulled" in r.json()["error"]["message"]
    api.put(b"x")
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"x")})
    api.ok("POST", "/v1/envs/production/versions", json={"source": SITE.split("  - name: pulled")[0].replace("blog", "journal")})
    assert [r["number"] for r in api.ok("GET", "/v1/services/blog/releases", "read")] == [1]  # dropped since: still listed


@pytest.mark.parametrize("path", ["../etc/passwd", "/abs", "a\\b", "a//b"])
def test_paths_outside_the_release_are_422(api, path):
    body = {"manifest": {"files": {path: {"sha256": sha(b"x"), "size": 1}}}}
    r = api.call("POST", "/v1/services/blog/releases", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_manifest"
    assert r.json()["error"]["problems"]


# -- nodes and channels -----------------------------------------------------------------------

def test_nodes_report_and_channels_follow(api):
    edge = api.register("edge-1", location="fra")
    other = api.register("edge-2", location="nyc")
    dns = api.register("dns-1", kind="dns")
    api.put(b"x")
    m = manifest(index__html=b"x")
    made = api.ok("POST", "/v1/services/blog/releases", json={"manifest": m})
    ctx = api.ctx
    edge_node, dns_node = api.store.get_node(edge), api.store.get_node(dns)
    state = ReleaseChannel().read(ctx, edge_node)
    assert state == {"blog": (1, {"service": "blog", "number": 1, "id": made["id"], "manifest": m})}
    assert ReleaseChannel().read(ctx, dns_node) == {}
    ready = ReleaseReadyChannel()
    assert ready.read(ctx, dns_node)["blog"][1] == {"service": "blog", "number": 1, "locations": []}
    assert ready.read(ctx, edge_node) == {}

    out = api.ok("POST", f"/v1/nodes/{edge}/releases", "edge-1", json={"service": "blog", "number": 1, "status": "serving"})
    assert out["serving"] == 1
    failed = api.ok("POST", f"/v1/nodes/{other}/releases", "edge-2",
                    json={"service": "blog", "number": 1, "status": "failed", "reason": "disk full"})
    assert failed["serving"] is None
    assert ready.read(ctx, dns_node)["blog"][1]["locations"] == ["fra"]
    [listed] = api.ok("GET", "/v1/services/blog/releases", "read")
    assert [n["name"] for n in listed["nodes"]] == ["edge-1"]
    r = api.call("POST", f"/v1/nodes/{edge}/releases", "edge-2", json={"service": "blog", "number": 1, "status": "serving"})
    assert r.status_code == 403
    r = api.call("POST", f"/v1/nodes/{edge}/releases", "edge-1", json={"service": "blog", "number": 1, "status": "maybe"})
    assert r.status_code == 422


def test_an_acknowledgement_wakes_dns_streams_and_waits_but_not_edge_streams(api):
    from owncdn.control.api.channels import stream_topic
    from owncdn.control.api.releases import release_topic

    edge = api.register("edge-1", location="fra")
    api.put(b"x")
    hub = api.ctx.hub
    topics = {"env": "production", "edges": stream_topic("production", "edge"),
              "dns": stream_topic("production", "dns"), "waits": release_topic("production", "blog")}

    def moved(action) -> set[str]:
        before = {name: hub.generation(topic) for name, topic in topics.items()}
        action()
        return {name for name, topic in topics.items() if hub.generation(topic) != before[name]}

    created = moved(lambda: api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"x")}))
    assert created == {"env", "waits"}  # every stream of the environment waits on "env" too
    acked = moved(lambda: api.ok("POST", f"/v1/nodes/{edge}/releases", "edge-1",
                                 json={"service": "blog", "number": 1, "status": "serving"}))
    assert acked == {"dns", "waits"}


async def test_a_release_wakes_edge_streams_that_read_only_the_channels_following_the_environment(api):
    import asyncio

    from owncdn.control.api.channels import state_changed

    class Counted:
        name = "counted"

        def __init__(self):
            self.reads = 0

        def read(self, ctx, node):
            self.reads += 1
            return {}

    counted = Counted()
    api.ctx.channels.append(counted)
    edge = await asyncio.to_thread(api.register, "edge-1")
    await asyncio.to_thread(api.put, b"x")
    headers = {"Authorization": f"Bearer {api.tokens['edge-1']}"}
    async with httpx.AsyncClient(base_url=str(api.http.base_url), headers=headers, timeout=10) as http:
        async with http.stream("GET", f"/v1/nodes/{edge}/events", params={"version": 1, "purge_after": 0}) as r:
            lines = r.aiter_lines()
            async for line in lines:
                if line.startswith("data:") and '"counted"' in line:
                    break  # the first (whole) read ends with the keys of the last channel, this one
            base = counted.reads
            await asyncio.to_thread(api.ok, "POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"x")})
            async for line in lines:
                if line.startswith("event: release"):
                    break
            assert counted.reads == base  # channels Rule 5: not read for a release
            state_changed(api.ctx)  # what a certificate or health change does
            for _ in range(200):
                if counted.reads > base:
                    break
                await asyncio.sleep(0.01)
            assert counted.reads > base


def test_the_channel_caches_manifests_but_follows_rollbacks(api):
    api.put(b"1")
    api.put(b"2")
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"1")})
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"2")})
    node = SimpleNamespace(kind="edge", env="production")
    channel = ReleaseChannel()
    assert channel.read(api.ctx, node)["blog"][0] == 2
    api.ok("POST", "/v1/services/blog/releases/1/activate")
    assert channel.read(api.ctx, node)["blog"][1]["manifest"] == manifest(a=b"1")


def test_a_release_made_here_reaches_the_channel_without_a_store_read(api, monkeypatch):
    api.put(b"1")
    node = SimpleNamespace(kind="edge", env="production")
    channel = next(c for c in api.ctx.channels if isinstance(c, ReleaseChannel))
    made = api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"1")})

    def no_read(*args, **kwargs):
        raise AssertionError("the manifest was read from the store again")

    monkeypatch.setattr(api.ctx.store, "get_release", no_read)
    data = channel.read(api.ctx, node)["blog"][1]
    assert (data["number"], data["id"]) == (made["number"], made["id"])
    sent = orjson.dumps(data)  # releasechannels Rule 7: the manifest's canonical text, as it is
    assert orjson.loads(sent)["manifest"] == manifest(a=b"1")
    assert sent.endswith(b',"manifest":' + parse_manifest(manifest(a=b"1")).canonical() + b"}")


# -- an upcoming release: edges fetch its blobs while they land ---------------------------------

def test_an_announced_release_reaches_edges_until_it_is_created(api):
    from owncdn.control.api.channels import stream_topic

    edge_node = api.store.get_node(api.register("edge-1"))
    dns_node = api.store.get_node(api.register("dns-1", kind="dns"))
    channel = next(c for c in api.ctx.channels if isinstance(c, UpcomingChannel))
    m = manifest(index__html=b"<h1>soon</h1>")
    before = api.ctx.hub.generation(stream_topic("production", "edge"))
    got = api.ok("POST", "/v1/services/blog/releases/upcoming", json={"manifest": m})
    assert got == {"service": "blog", "env": "production", "id": sha(canonical(m)), "expires_in": 120.0}
    assert api.ctx.hub.generation(stream_topic("production", "edge")) != before  # the edges' streams woke
    assert channel.read(api.ctx, edge_node) == {"blog": (got["id"], {"service": "blog", "id": got["id"], "manifest": m})}
    assert channel.read(api.ctx, dns_node) == {}
    assert ReleaseChannel().read(api.ctx, edge_node) == {}  # announced is not released: nothing to switch to
    api.put(b"<h1>soon</h1>")
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": m})
    assert channel.read(api.ctx, edge_node) == {}


def test_an_announcement_expires_and_is_checked_like_a_release():
    now = [0.0]
    channel = UpcomingChannel(clock=lambda: now[0])
    node = SimpleNamespace(kind="edge", env="production")
    channel.announce("production", "blog", "a" * 64, {"files": {}})
    channel.announce("staging", "blog", "b" * 64, {"files": {}})
    assert list(channel.read(None, node)) == ["blog"]
    channel.forget("production", "blog", "c" * 64)  # another release: this announcement stays
    assert list(channel.read(None, node)) == ["blog"]
    now[0] = 121.0
    assert channel.read(None, node) == {}


@pytest.mark.parametrize("service, body, status, code", [
    ("nope", {"manifest": {"files": {}}}, 404, "unknown_service"),
    ("pulled", {"manifest": {"files": {}}}, 422, "not_a_push_service"),
    ("blog", {"manifest": {"files": {"../x": {"sha256": "a" * 64, "size": 1}}}}, 422, "invalid_manifest"),
])
def test_a_bad_announcement_is_refused(api, service, body, status, code):
    r = api.call("POST", f"/v1/services/{service}/releases/upcoming", json=body)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_a_waiting_fetch_sends_blobs_as_they_land_and_ends_without_the_rest(api):
    api.register("edge-1")
    api.put(b"here")
    later, never = b"uploaded meanwhile", b"never uploaded"
    landed = threading.Event()

    def upload_soon():
        while api.ctx.hub.waiter_count() == 0:  # the fetch sent what was there and waits
            time.sleep(0.01)
        api.ok("POST", "/v1/blobs/bundle", content=bundle(later))
        landed.set()

    uploader = threading.Thread(target=upload_soon)
    uploader.start()
    body = {"hashes": [sha(b"here"), sha(later), sha(never)], "wait": 2.0}
    got = api.call("POST", "/v1/blobs/fetch", "edge-1", json=body)
    uploader.join()
    assert landed.is_set() and got.status_code == 200
    assert got.content == bundle(b"here", later)  # the one never uploaded is left out, no 404


def test_a_waiting_fetch_sends_a_landed_blob_as_the_upload_logged_it_without_asking_the_store(api):
    api.register("edge-1")
    later = b"uploaded while the fetch waits"
    looked: list[list[str]] = []
    sizes = api.blobs.sizes
    api.blobs.sizes = lambda hashes: looked.append(list(hashes)) or sizes(hashes)

    def upload_soon():
        while api.ctx.hub.waiter_count() == 0:  # the fetch looked once and waits
            time.sleep(0.01)
        api.ok("POST", "/v1/blobs/bundle", content=bundle(later))

    uploader = threading.Thread(target=upload_soon)
    uploader.start()
    got = api.call("POST", "/v1/blobs/fetch", "edge-1", json={"hashes": [sha(later)], "wait": 30.0})
    uploader.join()
    assert got.content == bundle(later)
    assert looked == [[sha(later)]]  # the first look only: the landed blob came from the upload's log


def test_a_waiting_fetch_of_present_blobs_ends_at_once(api):
    api.register("edge-1")
    api.put(b"a")
    api.put(b"b")
    got = api.call("POST", "/v1/blobs/fetch", "edge-1", json={"hashes": [sha(b"a"), sha(b"b"), sha(b"a")], "wait": 60.0})
    assert got.content == bundle(b"a", b"b")
    r = api.call("POST", "/v1/blobs/fetch", "edge-1", json={"hashes": [sha(b"a")], "wait": 61.0})
    assert r.status_code == 422


# -- one request: the release and its new blobs; who serves it ---------------------------------

def test_a_release_bundle_creates_the_release_and_stores_its_new_blobs(api):
    api.put(b"old")
    m = manifest(index__html=b"new", old__html=b"old")
    made = api.ok("POST", "/v1/services/blog/releases/bundle", content=release_bundle(m, b"new"), headers=BUNDLE)
    assert (made["number"], made["files"], made["id"]) == (1, 2, sha(canonical(m)))
    assert api.blobs.missing([sha(b"new")]) == []
    [listed] = api.ok("GET", "/v1/services/blog/releases", "read")
    assert listed["current"] and listed["id"] == made["id"]

    m2 = manifest(a=b"kept", b=b"absent")  # a blob neither inline nor uploaded before
    r = api.call("POST", "/v1/services/blog/releases/bundle", content=release_bundle(m2, b"kept"), headers=BUNDLE)
    assert r.status_code == 409 and r.json()["error"]["problems"] == [sha(b"absent")]
    assert api.blobs.missing([sha(b"kept")]) == []  # the inline blob stays: the next try does not send it
    assert [x["number"] for x in api.ok("GET", "/v1/services/blog/releases", "read")] == [1]


def test_the_next_manifest_is_checked_against_the_last_release_and_still_refused_when_wrong(api):
    first = manifest(index__html=b"a", x=b"a")
    api.ok("POST", "/v1/services/blog/releases/bundle", content=release_bundle(first, b"a"), headers=BUNDLE)
    assert api.ctx.recent_manifests[("production", "blog")].id == sha(canonical(first))  # releases Rule 9
    for files, why in [({**first["files"], "x/y": first["files"]["x"]}, "also a directory"),
                       ({**first["files"], "x": {"sha256": sha(b"a"), "size": True}}, "size must be"),
                       ({**first["files"], "../up": first["files"]["x"]}, "'..'")]:
        r = api.call("POST", "/v1/services/blog/releases/bundle", content=release_bundle({"files": files}),
                     headers=BUNDLE)
        assert r.status_code == 422 and why in r.text, (why, r.text)
    second = manifest(index__html=b"a", x=b"b")
    made = api.ok("POST", "/v1/services/blog/releases/bundle", content=release_bundle(second, b"b"), headers=BUNDLE)
    assert (made["number"], made["id"]) == (2, sha(canonical(second)))


@pytest.mark.parametrize("service, body, status, code", [
    ("blog", release_bundle(manifest(a=b"1"), b"1", encoded=json.dumps(manifest(a=b"1"), indent=1).encode()),
     422, "invalid_manifest"),  # not the canonical encoding
    ("blog", release_bundle(manifest(a=b"1"), b"1", encoded=json.dumps(
        {"files": {"a": dict(reversed(manifest(a=b"1")["files"]["a"].items()))}}, separators=(",", ":")).encode()),
     422, "invalid_manifest"),  # compact, but its keys not sorted (releases Rule 12)
    ("blog", release_bundle(manifest(a=b"1"), b"1", name=sha(b"other")), 400, "hash_mismatch"),
    ("blog", release_bundle({"files": {"../x": {"sha256": sha(b"1"), "size": 1}}}, b"1"), 422, "invalid_manifest"),
    ("nope", release_bundle(manifest(a=b"1"), b"1"), 404, "unknown_service"),
    ("pulled", release_bundle(manifest(a=b"1"), b"1"), 422, "not_a_push_service"),
    ("blog", b"", 400, "bad_bundle"),
])
def test_a_bad_release_bundle_stores_nothing(api, service, body, status, code):
    r = api.call("POST", f"/v1/services/{service}/releases/bundle", content=body, headers=BUNDLE)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert api.blobs.missing([sha(b"1")]) == [sha(b"1")]
    assert api.store.list_releases("production", service) == []


def test_release_status_names_who_serves_failed_or_is_pending_and_waits_for_the_last(api):
    nodes = [api.register(f"edge-{i}", location=loc) for i, loc in enumerate(["fra", "nyc", "sin", "syd"])]
    dns = api.register("dns-1", kind="dns")
    for node in [*nodes[:3], dns]:  # edge-3 was never heard from: not waited for
        api.store.node_contact(node)
    api.put(b"x")
    api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(index__html=b"x")})
    path = "/v1/services/blog/releases/1/status"
    st = api.ok("GET", path, "read")
    assert (st["number"], st["current"], st["complete"]) == (1, True, False)
    assert [n["name"] for n in st["pending"]] == ["edge-0", "edge-1", "edge-2"]

    api.ok("POST", f"/v1/nodes/{nodes[0]}/releases", "edge-0", json={"service": "blog", "number": 1, "status": "serving"})
    api.ok("POST", f"/v1/nodes/{nodes[1]}/releases", "edge-1",
           json={"service": "blog", "number": 1, "status": "failed", "reason": "disk full"})
    st = api.ok("GET", path, "deploy")
    assert [n["name"] for n in st["serving"]] == ["edge-0"] and [n["name"] for n in st["pending"]] == ["edge-2"]
    assert [(n["name"], n["reason"]) for n in st["failed"]] == [("edge-1", "disk full")]
    assert st["pending"][0]["reason"] == ""
    from owncdn.control.alerts import Alerts

    api.app.state.alerts = alerts = Alerts()
    retrying = api.ok("POST", f"/v1/nodes/{nodes[2]}/releases", "edge-2",
                      json={"service": "blog", "number": 1, "status": "retrying", "reason": "no space left"})
    [(_, alert)] = alerts.recent                  # core/alerts.py Rule 5
    assert (alert.kind, alert.severity, alert.subject) == ("release_retrying", "warning", "edge-2")
    assert "release 1 of blog yet: no space left" in alert.message
    assert retrying["serving"] is None      # still fetching: pending, with what it retries after
    st = api.ok("GET", path, "read")
    assert [(n["name"], n["reason"]) for n in st["pending"]] == [("edge-2", "no space left")] and not st["complete"]

    answer: list[dict] = []
    waiting = threading.Thread(target=lambda: answer.append(api.ok("GET", path + "?wait=60", "read")))
    waiting.start()
    deadline = time.monotonic() + 30
    while api.ctx.hub.waiter_count("releases/production/blog") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the wait is parked on the hub
    api.ok("POST", f"/v1/nodes/{nodes[2]}/releases", "edge-2", json={"service": "blog", "number": 1, "status": "serving"})
    waiting.join(30)
    [st] = answer
    assert st["complete"] and [n["name"] for n in st["serving"]] == ["edge-0", "edge-2"] and st["pending"] == []

    r = api.call("GET", "/v1/services/blog/releases/7/status", "read")
    assert r.status_code == 404
    r = api.call("GET", "/v1/services/blog/releases/7/status?wait=5", "read")  # checked in the first read
    assert r.status_code == 404 and "has no release 7" in r.json()["error"]["message"]
    api.store.delete_node(nodes[3])  # a report read its node in its own transaction: still a 404
    r = api.call("POST", f"/v1/nodes/{nodes[3]}/releases", "admin", json={"service": "blog", "number": 1, "status": "serving"})
    assert r.status_code == 404 and "there is no node" in r.json()["error"]["message"]


def test_a_push_hops_to_a_worker_thread_once_per_request_at_most():
    """auth Rule 4, releases Rule 11: FastAPI runs a plain function dependency in a
    worker thread, and a plain function endpoint there too, its answer validated in
    another; these are coroutines, which hop themselves only for their blocking work."""
    import inspect

    from owncdn.control.api import auth, blobs as blob_api, releases

    checks = [auth.context, auth.authenticate, auth.node_token, auth.bootstrap_token, auth.require("deploy"),
              blob_api.blob_store, blob_api.blob_reader]
    endpoints = [blob_api.missing, releases.create_release, releases.announce_release,
                 releases.create_release_with_blobs, releases.release_status, releases.report_release]
    assert [f.__name__ for f in checks + endpoints if not inspect.iscoroutinefunction(f)] == []


def test_a_create_is_parsed_against_the_manifest_announced_before_it(api, monkeypatch):
    """releases Rule 9: the announced manifest's entries are not checked again."""
    from owncdn.core.content import manifest as manifests

    api.put(b"a")
    api.put(b"b")
    m = manifest(index__html=b"a", other__page=b"b")
    api.ok("POST", "/v1/services/blog/releases/upcoming", json={"manifest": m})
    checked = []
    real = manifests.check_path
    monkeypatch.setattr(manifests, "check_path", lambda path: checked.append(path) or real(path))
    made = api.ok("POST", "/v1/services/blog/releases", json={"manifest": m})
    assert made["number"] == 1 and checked == []  # every entry known from the announcement
    m2 = manifest(index__html=b"b", other__page=b"b")
    assert api.ok("POST", "/v1/services/blog/releases", json={"manifest": m2})["number"] == 2
    assert checked == ["index/html"]  # against release 1 now: only the changed entry


def test_current_true_lists_the_current_release_alone_however_old(api):
    assert api.ok("GET", "/v1/services/blog/releases?current=true", "read") == []  # none yet
    for n in range(3):
        api.put(b"v%d" % n)
        api.ok("POST", "/v1/services/blog/releases", json={"manifest": manifest(a=b"v%d" % n)})
    api.ok("POST", "/v1/services/blog/releases/1/activate")
    assert [r["number"] for r in api.ok("GET", "/v1/services/blog/releases?limit=1", "read")] == [3]
    only = api.ok("GET", "/v1/services/blog/releases?current=true&limit=1", "read")
    assert [(r["number"], r["current"]) for r in only] == [(1, True)]
    r = api.call("GET", "/v1/services/blgo/releases?current=true", "read")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_service"
