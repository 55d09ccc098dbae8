"""The push flow of the Python client against a real API: only missing blobs move, a
push that breaks half-way changes nothing, and the next push sends only the rest."""

import hashlib
import os
import threading

import pytest

from owncdn.client import ApiError, Client, http11, sitedir
from owncdn.client.hashcache import HashCache
from owncdn.client.push import push_site
from owncdn.client.pushapi import PushApi
from owncdn.client.sitedir import SiteError
from owncdn.core.content.digest import digest
from owncdn.control.api import ApiServer, create_app
from owncdn.control.dirblobs import DirBlobStore
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
        client.token = token
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
    kept = []
    second = push_site(api, root, service="blog", keep=kept)
    assert (second.release["number"], second.blobs_uploaded, second.bytes_uploaded) == (2, 1, 13)
    assert second.bytes_moved == 13 + second.manifest_bytes
    [walk] = kept  # push Rule 12: what the push read, for `owncdn push` to keep until it exits
    assert len(walk.files) == second.files and walk.site.manifest.id == second.release["id"]


@pytest.fixture(params=["asked first", "streamed"])
def streamed(request, monkeypatch):
    """Both ways of push Rules 2-4: the whole directory hashed before the question, and
    (Rule 9) the questions and uploads while it is hashed, a blob at a time."""
    if request.param == "streamed":
        monkeypatch.setattr("owncdn.client.push.INLINE_BLOBS", 0)
        monkeypatch.setattr("owncdn.client.push.STREAM_FILES", 1)
    return request.param


def test_a_push_that_breaks_changes_nothing_and_the_next_sends_the_rest(api, tmp_path, monkeypatch, streamed):
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


def test_blobs_lost_before_the_release_are_sent_again(api, tmp_path, monkeypatch, streamed):
    root = site(tmp_path / "s", a="a", b="b")
    monkeypatch.setattr(api, "missing_blobs", lambda hashes: [])  # a stale answer
    result = push_site(api, root, service="blog")
    assert result.release["number"] == 1 and result.bytes_uploaded == 2


@pytest.mark.parametrize("size", [10, 3 << 20])  # in a bundle, and alone
def test_a_file_that_changes_while_pushed(api, tmp_path, size):
    root = site(tmp_path / "s", a="b" * size)

    def change(site, missing):  # after hashing, before uploading
        (root / "a").write_text("c" * size)

    with pytest.raises(SiteError, match="changed while it was being pushed") as refused:
        push_site(api, root, service="blog", on_plan=change)
    assert str(refused.value).startswith(f"{root / 'a'} changed while it was being pushed")   # the file named
    assert str(refused.value).count("nothing was stored") == 1
    assert api.releases("production", "blog") == []


@pytest.mark.parametrize("new", ["c" * 10, "longer than it was"])  # other bytes (hash_mismatch), other size
def test_a_file_that_changes_while_sent_with_sendfile(api, lean, tmp_path, new):
    root = site(tmp_path / "s", a="b" * 10, z="z")

    def change(site, missing):
        (root / "a").write_text(new)

    with pytest.raises(SiteError, match="changed while it was being pushed") as refused:
        push_site(lean, root, service="blog", on_plan=change)
    assert str(refused.value).startswith(str(root / "a"))
    assert api.releases("production", "blog") == []
    assert ("POST", "/v1/blobs/bundle") in lean.calls


def test_many_small_files_go_in_bundles_and_can_be_fetched_back(api, tmp_path, monkeypatch):
    files = {f"f{i}": f"content {i}" * (i + 1) for i in range(600)}
    root = site(tmp_path / "s", **files, big="x" * (2 << 20))
    bundles = []
    real = api.put_bundle
    monkeypatch.setattr(api, "put_bundle", lambda content, size=None: bundles.append(1) or real(content, size))
    monkeypatch.setattr("owncdn.client.push.BUNDLE_BLOBS", 256)
    result = push_site(api, root, service="blog")
    assert result.blobs_uploaded == 601 and len(bundles) == 3  # 600 small ones, 256 per bundle; big alone
    wanted = [digest(t.encode()) for t in files.values()][:300]
    fetched = dict(api.fetch_blobs(wanted + wanted[:5]))
    assert sorted(fetched) == sorted(wanted)  # each once, in the order of the control plane's packs
    assert fetched[wanted[7]] == files["f7"].encode()
    with pytest.raises(ApiError) as err:
        list(api.fetch_blobs([wanted[0], "0" * 64]))
    assert err.value.status == 404 and err.value.problems == ["0" * 64]


# -- a push after a push: the release and the files read again, in one request (push Rule 7) --

def sha(text: str) -> str:
    return digest(text.encode())


@pytest.fixture
def lean(api, monkeypatch):
    """The same control plane through ``PushApi`` (what `owncdn push` uses), with every
    request recorded; the hash cache trusts files written just before a push."""
    monkeypatch.setattr("owncdn.client.hashcache.RACY_NS", 0)
    with PushApi(api.base_url, api.token) as client:
        calls, real = [], client._call

        def recorded(method, path, *args, **kwargs):
            calls.append((method, path.split("?")[0]))
            return real(method, path, *args, **kwargs)

        client._call = recorded
        client.calls = calls
        yield client


def test_a_second_push_sends_the_changed_file_with_the_release(api, lean, tmp_path):
    root = site(tmp_path / "s", index__html="home", about__html="about", same__txt="home")
    cache = tmp_path / "cache"
    first = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    assert (first.release["number"], first.blobs_uploaded) == (1, 2)  # nothing remembered yet: ask first
    assert lean.calls[0] == ("POST", "/v1/blobs/missing")

    lean.calls.clear()
    (root / "about.html").write_text("about us")
    second = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    assert lean.calls == [("POST", "/v1/services/blog/releases/bundle")]
    assert (second.release["number"], second.blobs_uploaded, second.bytes_uploaded) == (2, 1, 8)
    assert api.blobs.missing([sha("about us")]) == []

    lean.calls.clear()
    assert api.blobs.delete_older(sha("home"), float("inf")) == 4  # the guess is wrong: the control plane lost a blob
    (root / "about.html").write_text("about them")
    third = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    assert lean.calls == [("POST", "/v1/services/blog/releases/bundle"), ("POST", "/v1/blobs/bundle"),
                          ("POST", "/v1/services/blog/releases")]
    assert (third.release["number"], third.blobs_uploaded) == (3, 2)
    assert api.blobs.missing([sha("home"), sha("about them")]) == []


def test_a_control_plane_without_release_bundles_gets_ask_upload_create(api, lean, tmp_path, monkeypatch):
    root = site(tmp_path / "s", a="1", b="2")
    cache = tmp_path / "cache"
    push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    (root / "a").write_text("changed")

    def older(*args, **kwargs):
        raise ApiError(404, "not_found", "Not Found")

    monkeypatch.setattr(lean, "create_release_with_blobs", older)
    lean.calls.clear()
    again = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    assert (again.release["number"], again.blobs_uploaded) == (2, 1)
    assert lean.calls == [("POST", "/v1/blobs/missing"), ("POST", "/v1/blobs/bundle"), ("POST", "/v1/services/blog/releases")]


def test_a_file_that_changes_before_it_goes_inline(api, lean, tmp_path):
    root = site(tmp_path / "s", a="1", b="2")
    cache = tmp_path / "cache"
    push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    (root / "a").write_text("3")

    def change(site, missing):
        (root / "a").write_text("4")

    with pytest.raises(SiteError, match="changed while it was being pushed"):
        push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache), on_plan=change)
    assert [r["number"] for r in api.releases("production", "blog")] == [1]


def test_a_large_upload_is_announced_first_so_edges_fetch_while_it_runs(api, lean, tmp_path, monkeypatch):
    monkeypatch.setattr("owncdn.client.push.ANNOUNCE_BYTES", 10)
    root = site(tmp_path / "s", a="1" * 6, b="2" * 6, c="3")
    push_site(lean, root, service="blog")
    assert lean.calls == [("POST", "/v1/blobs/missing"), ("POST", "/v1/services/blog/releases/upcoming"),
                          ("POST", "/v1/blobs/bundle"), ("POST", "/v1/services/blog/releases")]
    lean.calls.clear()
    (root / "c").write_text("4")  # 1 byte to upload: not worth announcing
    push_site(lean, root, service="blog")
    assert ("POST", "/v1/services/blog/releases/upcoming") not in lean.calls


def test_a_control_plane_without_announcements_still_gets_the_push(api, lean, tmp_path, monkeypatch):
    monkeypatch.setattr("owncdn.client.push.ANNOUNCE_BYTES", 1)

    def older(*args, **kwargs):
        raise ApiError(404, "not_found", "Not Found")

    monkeypatch.setattr(lean, "announce_release", older)
    pushed = push_site(lean, site(tmp_path / "s", a="1", b="2"), service="blog")
    assert (pushed.release["number"], pushed.blobs_uploaded) == (1, 2)


def test_push_api_errors_are_api_errors(api):
    with PushApi(api.base_url, "not-a-token") as client:
        with pytest.raises(ApiError) as caught:
            client.missing_blobs([])
        assert caught.value.status == 401
    with PushApi("http://127.0.0.1:9", None, timeout=2) as client:
        with pytest.raises(ApiError) as caught:
            client.missing_blobs([])
        assert (caught.value.status, caught.value.code) == (0, "unreachable")
    with pytest.raises(ApiError):
        PushApi("ftp://example.com")


def test_a_bundle_body_is_read_into_a_reused_buffer_and_a_file_that_changed_size_is_refused(tmp_path):
    from owncdn.client.push import _bundle_body
    from owncdn.core.content.bundle import BlobEnd, BlobStart, BundleReader

    files = {name: os.urandom(n) for name, n in (("a", 10), ("b", 0), ("c", 3000))}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    blobs = [(hashlib.sha256(d).hexdigest(), len(d), str(tmp_path / n)) for n, d in files.items()]
    buf, body = _bundle_body(bytearray(), blobs)
    again, body2 = _bundle_body(buf, blobs[:1])
    assert again is buf  # big enough: reused
    got, data = [], b""
    for ev in BundleReader().feed(bytes(body)):
        if isinstance(ev, BlobStart):
            data = b""
        elif isinstance(ev, BlobEnd):
            got.append((ev.sha256, data))
        else:
            data += ev.data
    assert got == [(hashlib.sha256(d).hexdigest(), d) for d in files.values()]
    (tmp_path / "a").write_bytes(b"longer now, hashed before")
    with pytest.raises(SiteError, match="changed while it was being pushed"):
        _bundle_body(buf, blobs[:1])


def test_push_api_keeps_one_connection_per_thread_and_closes_them_all(api):
    """pushapi Rule 2: a thread's calls reuse its connection; threads alive at once
    each have their own; ``close`` closes every one."""
    with PushApi(api.base_url, api.token) as client:
        client.missing_blobs([])
        client.missing_blobs([])
        assert len(client._conns) == 1
        both_called = threading.Barrier(3)

        def call():
            client.missing_blobs([])
            both_called.wait()

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        both_called.wait()
        for t in threads:
            t.join()
        conns = [conn for conn, _ in client._conns.values()]
        assert len(set(map(id, conns))) == 3 and all("open" in repr(c) for c in conns)
    assert client._conns == {} and all("closed" in repr(c) for c in conns)


@pytest.mark.parametrize("service, calls", [
    ("blog", [("POST", "/v1/blobs/missing"), ("POST", "/v1/services/blog/releases/upcoming"),
              ("POST", "/v1/blobs/bundle"), ("POST", "/v1/blobs/bundle"), ("POST", "/v1/services/blog/releases")]),
    ("nope", [("POST", "/v1/blobs/missing"), ("POST", "/v1/services/nope/releases/upcoming")]),  # nothing sent
])
def test_the_announcement_is_the_uploads_first_task_and_a_refused_one_stops_them(api, lean, tmp_path, monkeypatch,
                                                                                 service, calls):
    """push Rule 8, with one upload thread (so the order is fixed) and a bundle per blob."""
    monkeypatch.setattr("owncdn.client.push.ANNOUNCE_BYTES", 1)
    monkeypatch.setattr("owncdn.client.push.BUNDLE_BLOBS", 1)
    root = site(tmp_path / "s", a="1", b="2")
    if service == "nope":
        with pytest.raises(ApiError, match="no service 'nope'"):
            push_site(lean, root, service=service, parallel=1)
    else:
        push_site(lean, root, service=service, parallel=1)
    assert lean.calls == calls
    assert len(dict(api.blobs.stored())) == (2 if service == "blog" else 0)


def streaming(monkeypatch, inline_blobs=3):
    """Pushes that hash more than ``inline_blobs`` files stream (Rule 9), asking about the
    first blob alone, then 2, 4, ... (the blobs of each question recorded)."""
    monkeypatch.setattr("owncdn.client.push.INLINE_BLOBS", inline_blobs)
    monkeypatch.setattr("owncdn.client.push.STREAM_FILES", 1)


def test_a_large_first_push_asks_and_uploads_while_it_hashes(api, lean, tmp_path, monkeypatch):
    """push Rule 9: the last file is hashed only once a bundle went out (else the test
    fails after 10 s); the questions grow 1, 2, 4; the release is created last."""
    streaming(monkeypatch)
    files = {f"f{i}": f"file {i}" for i in range(7)} | {"same": "file 0"}
    root = site(tmp_path / "s", **files)
    sent, asked, waited = threading.Event(), [], []
    real_put, real_missing, real_hash = lean.put_bundle_files, lean.missing_blobs, sitedir._hash_fd

    def put(blobs, *kept):
        done = real_put(blobs, *kept)
        sent.set()
        return done

    def missing(hashes):
        asked.append(len(hashes))
        return real_missing(hashes)

    def hash_fd(fd, buf, source, *small):
        if source.endswith("same"):  # the last file in order
            waited.append(sent.wait(10))
        return real_hash(fd, buf, source, *small)

    monkeypatch.setattr(lean, "put_bundle_files", put)
    monkeypatch.setattr(lean, "missing_blobs", missing)
    monkeypatch.setattr(sitedir, "_hash_fd", hash_fd)
    pushed = push_site(lean, root, service="blog", parallel=2)
    assert waited == [True]
    assert asked == [1, 2, 4]  # 7 blobs: "same" holds f0's bytes, asked about once
    assert (pushed.release["number"], pushed.files, pushed.blobs_uploaded, pushed.bytes_uploaded) == (1, 8, 7, 42)
    assert lean.calls[-1] == ("POST", "/v1/services/blog/releases")
    assert len(dict(api.blobs.stored())) == 7

    asked.clear()  # the same files again, no hash cache: asked about, none sent, no announcement needed
    lean.calls.clear()
    again = push_site(lean, root, service="blog", parallel=2)
    assert (again.release["number"], again.blobs_uploaded, again.bytes_uploaded, asked) == (2, 0, 0, [1, 2, 4])
    assert ("POST", "/v1/blobs/bundle") not in lean.calls


def test_a_streamed_push_uploads_the_small_files_bytes_it_hashed(api, lean, tmp_path, monkeypatch):
    """push Rule 11, sitedir Rule 9: a file rewritten (same size) after it was hashed is
    uploaded as hashed, not read again; no file is opened for its upload."""
    streaming(monkeypatch)
    files = {f"f{i}": f"file {i}" for i in range(6)} | {"zz": ""}  # an empty file, sent last
    root = site(tmp_path / "s", **files)
    real_missing, opened = lean.missing_blobs, []

    def missing(hashes):
        if not opened:  # at the first question f0 was hashed: now it changes on disk
            opened.append(True)
            (root / "f0").write_text("FILE 0")
        return real_missing(hashes)

    monkeypatch.setattr(lean, "missing_blobs", missing)
    real_send_file = http11.Connection._send_file
    sent_files = []
    monkeypatch.setattr(http11.Connection, "_send_file", lambda self, piece: (sent_files.append(piece), real_send_file(self, piece)))
    pushed = push_site(lean, root, service="blog", parallel=2)
    stored = dict(api.blobs.stored())
    assert digest(b"file 0") in stored and digest(b"FILE 0") not in stored  # the bytes hashed
    assert digest(b"") in stored
    assert pushed.release["number"] == 1 and pushed.blobs_uploaded == 7 and sent_files == []


def test_a_streamed_push_reports_progress_once_the_upload_is_known(api, lean, tmp_path, monkeypatch):
    """push Rules 6 and 9: ``on_plan`` gets every missing blob (after all questions) before
    any progress, and the progress adds up to the upload."""
    streaming(monkeypatch)
    root = site(tmp_path / "s", **{f"f{i}": "x" * (i + 1) for i in range(6)})
    events = []
    pushed = push_site(lean, root, service="blog", parallel=3, progress=lambda n: events.append(n),
                       on_plan=lambda s, missing: events.append(sorted(missing)))
    assert events[0] == sorted(pushed_site_blobs(root))
    assert sum(events[1:]) == pushed.bytes_uploaded == 21


def pushed_site_blobs(root) -> list[str]:
    return [digest((root / f"f{i}").read_bytes()) for i in range(6)]


def test_a_streamed_push_whose_directory_breaks_changes_nothing(api, lean, tmp_path, monkeypatch):
    """push Rules 3 and 9: a file that cannot be read half-way fails the push; no release,
    no cache written (files not hashed would lose their entries)."""
    streaming(monkeypatch)
    root = site(tmp_path / "s", **{f"f{i}": f"file {i}" for i in range(7)})
    real_hash = sitedir._hash_fd

    def hash_fd(fd, buf, source, *small):
        if source.endswith("f5"):
            raise SiteError(f"{source}: cannot read the file (gone)")
        return real_hash(fd, buf, source, *small)

    monkeypatch.setattr(sitedir, "_hash_fd", hash_fd)
    cache = HashCache.for_root(root, tmp_path / "cache")
    with pytest.raises(SiteError, match="f5: cannot read"):
        push_site(lean, root, service="blog", parallel=2, cache=cache)
    assert api.releases("production", "blog") == []
    assert not os.path.exists(cache.path)
    assert ("POST", "/v1/services/blog/releases") not in lean.calls


@pytest.mark.parametrize("asking, missing, unasked, failed, announced", [
    (0, 0, 0, False, False),           # every answer in, nothing to upload
    (0, 99, 0, False, False),          # ... less than ANNOUNCE_BYTES
    (0, 100, 0, False, True),
    (0, 60, 40, False, True),          # the last blobs hashed, not asked about yet, may be missing too
    (1, 0, 0, False, True),            # an answer still to come
    (1, 100, 0, True, False),          # an upload failed: the push ends
])
def test_a_streamed_push_announces_unless_its_upload_is_known_to_be_small(monkeypatch, asking, missing, unasked,
                                                                          failed, announced):
    """push Rules 8 and 9 (``_Stream.announce``), with ANNOUNCE_BYTES at 100."""
    from owncdn.client.push import _Stream
    from owncdn.client.workers import Workers

    class Announced:
        calls = []

        def announce_release(self, env, service, manifest):
            self.calls.append((env, service))

    monkeypatch.setattr("owncdn.client.push.ANNOUNCE_BYTES", 100)
    workers, client = Workers(1), Announced()
    stream = _Stream(client, workers, None)
    stream.asking, stream.missing_bytes, stream.chunk_bytes = asking, missing, unasked
    if failed:
        workers.stop(KeyError("an upload failed"))
    stream.announce("production", "blog", {})
    assert client.calls == ([("production", "blog")] if announced else [])


@pytest.mark.parametrize("service", ["blog", "nope"])
def test_a_streamed_push_is_announced_and_a_refused_announcement_fails_it(api, lean, tmp_path, monkeypatch, service):
    """push Rules 3, 8 and 9: the announcement once hashing ended; an unknown service fails
    the push with that error and no release."""
    streaming(monkeypatch)
    monkeypatch.setattr("owncdn.client.push.ANNOUNCE_BYTES", 1)
    root = site(tmp_path / "s", **{f"f{i}": f"file {i}" for i in range(6)})
    if service == "nope":
        with pytest.raises(ApiError, match="no service 'nope'"):
            push_site(lean, root, service=service, parallel=2)
        assert ("POST", "/v1/services/nope/releases") not in lean.calls
    else:
        assert push_site(lean, root, service=service, parallel=2).blobs_uploaded == 6
        assert lean.calls[-1] == ("POST", "/v1/services/blog/releases")
    assert lean.calls.count(("POST", f"/v1/services/{service}/releases/upcoming")) == 1


@pytest.mark.parametrize("items, parallel, fail, begun, raised", [
    (list(range(5)), 1, set(), [0, 1, 2, 3, 4], None),
    (list(range(5)), 3, set(), [0, 1, 2, 3, 4], None),
    (list(range(2)), 8, set(), [0, 1], None),
    ([], 8, set(), [], None),
    (list(range(5)), 1, {1, 3}, [0, 1], 1),  # nothing begun after a failure
    (list(range(5)), 0, {0}, [0], 0),        # at least one thread
])
def test_uploads_run_in_threads_in_order_and_stop_at_a_failure(items, parallel, fail, begun, raised):
    """push Rule 2: the upload threads (``_in_threads``) take the items in order."""
    from owncdn.client.push import _in_threads

    calls = []

    def fn(item):
        calls.append(item)
        if item in fail:
            raise ValueError(item)
        return item * 10

    if raised is None:
        assert _in_threads(fn, items, parallel) == [i * 10 for i in items]
    else:
        with pytest.raises(ValueError) as caught:
            _in_threads(fn, items, parallel)
        assert caught.value.args == (raised,)
    assert sorted(calls) == begun


def test_the_first_failure_in_order_is_raised_whichever_came_first():
    from owncdn.client.push import _in_threads

    second_failed = threading.Event()

    def fn(item):
        if item == 1:
            second_failed.set()
            raise ValueError("second")
        second_failed.wait(10)
        raise ValueError("first")

    with pytest.raises(ValueError, match="first"):
        _in_threads(fn, [0, 1], 2)


def _released_manifest(api, number: int) -> bytes:
    r = api._http.get(f"/v1/services/blog/releases/{number}/manifest")
    assert r.status_code == 200, r.text
    return r.content


def test_a_push_after_a_release_sends_the_manifest_as_its_changes(api, lean, tmp_path):
    root = site(tmp_path / "s", **{f"p{i}__index.html": f"page {i}" for i in range(20)})
    cache = tmp_path / "cache"
    first = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    (root / "p3" / "index.html").write_text("page three")
    (root / "p4" / "index.html").unlink()
    (root / "new.html").write_text("new")
    lean.calls.clear()
    second = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    assert lean.calls == [("POST", "/v1/services/blog/releases/bundle")]
    whole = sitedir.scan_site(root).manifest
    assert second.release["id"] == whole.id
    assert _released_manifest(api, second.release["number"]) == whole.canonical()
    changes = ('{"new.html":{"blob":"%s","size":3},"p3/index.html":{"blob":"%s","size":10},"p4/index.html":null}'
               % (sha("new"), sha("page three")))
    assert second.manifest_bytes == len(changes) < first.manifest_bytes


@pytest.mark.parametrize("spoil, bundles", [
    ("another release since", 2),         # from another directory: the control plane's last release differs
    ("an entry the release had not", 2),  # the changes do not give the manifest's id
    ("no release kept", 1),               # a cache saved by a push that made no release: the whole manifest
])
def test_changes_the_control_plane_cannot_apply_are_followed_by_the_whole_manifest(api, lean, tmp_path, spoil,
                                                                                   bundles):
    root = site(tmp_path / "s", a="1", b="2", c="3", d="4", e="5")
    cache = tmp_path / "cache"
    push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    if spoil == "another release since":
        other = site(tmp_path / "o", a="x")
        push_site(lean, other, service="blog", cache=HashCache.for_root(other, tmp_path / "other-cache"))
    else:
        held = HashCache.for_root(root, cache)
        held.new = dict(held.old)
        if spoil == "an entry the release had not":
            held.new["ghost.html"] = (1, 1, 1, 1, 1, sha("ghost"), 1)
            held.released_as(*held.released)
        held.save()
    (root / "a").write_text("changed")
    lean.calls.clear()
    again = push_site(lean, root, service="blog", cache=HashCache.for_root(root, cache))
    assert lean.calls == [("POST", "/v1/services/blog/releases/bundle")] * bundles
    whole = sitedir.scan_site(root).manifest
    assert again.release["id"] == whole.id
    assert _released_manifest(api, again.release["number"]) == whole.canonical()


@pytest.mark.parametrize("edit", ["one changed", "added and removed", "touched, same bytes", "nothing", "all changed"])
def test_the_changes_record_compares_only_the_files_hashed_again(tmp_path, monkeypatch, edit):
    """Rule 10: the files the cache answered for are the cache's own entries, so comparing
    the hashed ones (and listing the gone ones) gives the record a whole comparison gives."""
    from owncdn.client import hashcache
    from owncdn.client.push import _changes_record

    monkeypatch.setattr(hashcache, "RACY_NS", -10**12)  # entries trusted at once
    monkeypatch.setattr(hashcache, "FINE_RACY_NS", -10**12)
    root = site(tmp_path / "s", **{f"p{i}": f"page {i}" for i in range(40)})
    cache_dir = tmp_path / "cache"
    first = HashCache.for_root(root, cache_dir)
    sitedir.walk_site(root, sitedir.Limits(), first).hash()
    if edit == "one changed":
        (root / "p7").write_text("page seven")
    elif edit == "added and removed":
        (root / "p3").unlink()
        (root / "new.html").write_text("new")
    elif edit == "touched, same bytes":
        os.utime(root / "p5", ns=(1, 1))  # hashed again, the same entry
    elif edit == "all changed":
        for i in range(40):
            (root / f"p{i}").write_text(f"page {i}, edited")
    cache = HashCache.for_root(root, cache_dir)
    again = sitedir.walk_site(root, sitedir.Limits(), cache).hash(save=False)
    assert again.hashed is not None and len(again.hashed) == 40 - again.remembered
    assert _changes_record(cache.old, again.manifest, again.hashed) == _changes_record(cache.old, again.manifest)
    if edit == "nothing":
        assert again.hashed == [] and _changes_record(cache.old, again.manifest, again.hashed) == b"{}"


def test_bundles_are_large_for_a_client_that_sends_files_and_smaller_for_one_that_reads_them():
    """Rule 2: ``PushApi`` sends a bundle's files as they are (16 MiB bundles); ``Client``
    reads each bundle into a buffer per upload thread (4 MiB ones)."""
    from owncdn.client.push import _batches

    class Sends:
        sends_files = True

    blobs = [(f"{i:064x}", (1 << 20) - 1, f"/f{i}") for i in range(20)] + [("b" * 64, (1 << 20) + 1, "/big")]
    assert [len(b) for b in _batches(blobs, Sends())] == [16, 1, 4]  # the large one alone
    assert [len(b) for b in _batches(blobs, object())] == [4, 4, 4, 4, 1, 4]


def test_the_hashing_is_told_from_the_walk_on(api, tmp_path, monkeypatch, streamed):
    """Rule 13: ``on_walk`` before any file is read, then ``hashed`` with the size of each
    file read (not of those the hash cache answered for), before the upload is planned."""
    from owncdn.client import hashcache

    monkeypatch.setattr(hashcache, "RACY_NS", -10**12)  # entries trusted at once
    monkeypatch.setattr(hashcache, "FINE_RACY_NS", -10**12)
    root = site(tmp_path / "s", a="a" * 100, b="bb", c="c" * 7)
    cache = HashCache(str(tmp_path / "cache.hashes"))
    told = []
    events = dict(on_walk=lambda walk: told.append(("walk", walk.todo_bytes)), hashed=lambda n: told.append(n),
                  on_plan=lambda site, missing: told.append("plan"))
    push_site(api, root, service="blog", cache=cache, **events)
    assert told[0] == ("walk", 109) and sorted(told[1:4]) == [2, 7, 100] and told[4:] == ["plan"]
    (root / "b").write_text("b changed")
    told.clear()
    push_site(api, root, service="blog", cache=HashCache(str(tmp_path / "cache.hashes")), **events)
    assert told[:2] == [("walk", 9), 9]  # a and c: remembered, not read
