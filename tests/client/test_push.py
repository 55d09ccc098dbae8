"""The push flow of the Python client against a real API: only missing blobs move, a
push that breaks half-way changes nothing, and the next push sends only the rest."""

import hashlib

import pytest

from owncdn.client import ApiError, Client
from owncdn.client.push import push_site
from owncdn.client.sitedir import SiteError
from owncdn.control.api import ApiServer, create_app
from owncdn.control.blobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url

CDN = "version: 1\nservices:\n  - name: blog\n    hostnames: [blog.example.com]\n    mode: push\n"


@pytest.fixture
def api(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    _, token = store.create_token("ci", {"deploy", "read"})
    blobs = DirBlobStore(tmp_path / "blobs")
    with ApiServer(create_app(store, blobs=blobs)) as server, Client(server.url, token) as client:
        client.add_version("production", CDN)
        client.blobs = blobs
        yield client
    store.close()


def site(root, **files):
    for name, text in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_push_then_push_one_change(api, tmp_path):
    root = site(tmp_path / "s", index__html="home", a__b__c__txt="deep", same__txt="home")
    seen = []
    first = push_site(api, root, service="blog", progress=seen.append)
    assert (first.release["number"], first.files, first.blobs_uploaded, first.bytes_uploaded) == (1, 3, 2, 8)
    assert sum(seen) == 8
    (root / "index.html").write_text("home, changed")
    (root / "same.txt").write_text("home, changed")
    second = push_site(api, root, service="blog")
    assert (second.release["number"], second.blobs_uploaded, second.bytes_uploaded) == (2, 1, 13)
    assert second.bytes_moved == 13 + second.manifest_bytes


def test_a_push_that_breaks_changes_nothing_and_the_next_sends_the_rest(api, tmp_path, monkeypatch):
    root = site(tmp_path / "s", one="1", two="22", three="333")
    push_site(api, root, service="blog")
    for name in ("one", "two", "three"):
        (root / name).write_text(name * 10)
    real_put, calls = api.put_bundle, []

    def flaky_put(content, size=None):
        calls.append(content)
        if len(calls) == 2:
            raise ApiError(0, "unreachable", "the network went away")
        return real_put(content, size)

    monkeypatch.setattr("owncdn.client.push.BUNDLE_BLOBS", 1)  # one request per blob
    monkeypatch.setattr(api, "put_bundle", flaky_put)
    with pytest.raises(ApiError, match="went away"):
        push_site(api, root, service="blog", parallel=1)
    assert [r["number"] for r in api.releases("production", "blog") if r["current"]] == [1]
    monkeypatch.setattr(api, "put_bundle", real_put)
    again = push_site(api, root, service="blog")
    stored_before = len(calls) - 1  # uploads that went through before or after the one that broke
    assert stored_before >= 1
    assert again.release["number"] == 2 and again.blobs_uploaded == 3 - stored_before


def test_blobs_lost_before_the_release_are_sent_again(api, tmp_path, monkeypatch):
    root = site(tmp_path / "s", a="a", b="b")
    monkeypatch.setattr(api, "missing_blobs", lambda hashes: [])  # a stale answer
    result = push_site(api, root, service="blog")
    assert result.release["number"] == 1 and result.bytes_uploaded == 2


@pytest.mark.parametrize("size", [10, 3 << 20])  # in a bundle, and alone
def test_a_file_that_changes_while_pushed(api, tmp_path, size):
    root = site(tmp_path / "s", a="b" * size)

    def change(site, missing):  # after hashing, before uploading
        (root / "a").write_text("c" * size)

    with pytest.raises(SiteError, match="changed while it was being pushed"):
        push_site(api, root, service="blog", on_plan=change)
    assert api.releases("production", "blog") == []


def test_many_small_files_go_in_bundles_and_can_be_fetched_back(api, tmp_path, monkeypatch):
    files = {f"f{i}": f"content {i}" * (i + 1) for i in range(600)}
    root = site(tmp_path / "s", **files, big="x" * (2 << 20))
    bundles = []
    real = api.put_bundle
    monkeypatch.setattr(api, "put_bundle", lambda content, size=None: bundles.append(1) or real(content, size))
    result = push_site(api, root, service="blog")
    assert result.blobs_uploaded == 601 and len(bundles) == 3  # 600 small ones, 256 per bundle; big alone
    wanted = [hashlib.sha256(t.encode()).hexdigest() for t in files.values()][:300]
    fetched = dict(api.fetch_blobs(wanted + wanted[:5]))
    assert list(fetched) == wanted
    assert fetched[wanted[7]] == files["f7"].encode()
    with pytest.raises(ApiError) as err:
        list(api.fetch_blobs([wanted[0], "0" * 64]))
    assert err.value.status == 404 and err.value.problems == ["0" * 64]
