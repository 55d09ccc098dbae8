"""Upload bodies read raw from the socket (control/api/rawbody.py, uploadsink.py) on
uvicorn on loopback: the same answers as through ASGI, keep-alive after them, and
what a refused, cut or stalled upload leaves."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app, rawbody
from owncdn.control.dirblobs import DirBlobStore
from owncdn.packs import PackWriter
from owncdn.control.store import Store, sqlite_url
from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest

SITE = "version: 1\nservices:\n  - name: blog\n    hostnames: [blog.example.com]\n    mode: push\n"


def record(data: bytes, name: str | None = None) -> bytes:
    return header(name or digest(data), len(data)) + data


class Conn:
    """One keep-alive HTTP/1.1 connection, written and read by hand."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.token, self.rest = token, b""

    def head(self, method: str, path: str, length: int | None, version: str = "1.1", **fields: str) -> bytes:
        lines = [f"{method} {path} HTTP/{version}", "Host: t", f"Authorization: Bearer {self.token}"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in fields.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, method: str, path: str, body: bytes = b"", **fields: str) -> None:
        self.sock.sendall(self.head(method, path, len(body), **fields) + body)

    def answer(self) -> tuple[int, dict, bytes]:
        while b"\r\n\r\n" not in self.rest:
            self._more()
        head, self.rest = self.rest.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(fields.get("content-length", 0))
        while len(self.rest) < length:
            self._more()
        body, self.rest = self.rest[:length], self.rest[length:]
        return int(lines[0].split()[1]), fields, body

    def call(self, method: str, path: str, body: bytes = b"", **fields: str) -> tuple[int, dict]:
        self.send(method, path, body, **fields)
        status, _, data = self.answer()
        return status, json.loads(data)

    def _more(self) -> None:
        got = self.sock.recv(1 << 16)
        if not got:
            raise ConnectionError("closed")
        self.rest += got

    def closed_by_server(self, within: float) -> bool:
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1 << 16) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A control plane on uvicorn with a directory store; ``runs`` counts raw reads."""
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    runs: list[str] = []
    real = rawbody.RawBody.run

    async def counted(self, sink):
        runs.append(type(sink).__name__)
        return await real(self, sink)

    monkeypatch.setattr(rawbody.RawBody, "run", counted)
    app = create_app(store, blobs=blobs)
    with ApiServer(app) as server:
        token = store.create_token("ci", {"deploy", "read", "admin"})[1]
        conn = Conn(server.port, token)
        yield conn, blobs, runs, server, token
        conn.close()
    store.close()


def leftovers(blobs: DirBlobStore) -> list[str]:
    """Files of blobs not stored (yet): temp files, and packs without an index."""
    return [os.path.join(d, f) for d, _, files in os.walk(blobs.tmp) for f in files] + unindexed(blobs)


def unindexed(blobs: DirBlobStore) -> list[str]:
    return [str(p) for p in (blobs.root / "packs").glob("*.pack") if not p.with_suffix(".idx").exists()]


def settled(blobs: DirBlobStore) -> None:
    """Wait until no upload is being received, then check nothing half-written is left."""
    deadline = time.monotonic() + 5
    while rawbody._RECEIVERS.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rawbody._RECEIVERS.active == 0
    assert leftovers(blobs) == []


def test_bundles_are_read_raw_and_the_connection_carries_the_next_requests(served):
    conn, blobs, runs, _, _ = served
    small = [b"", b"one", os.urandom(5000)]
    large = [os.urandom(n) for n in (700_000, 2 << 20, 10, 300_000)]
    for datas in (small, large):
        status, got = conn.call("POST", "/v1/blobs/bundle", b"".join(map(record, datas)))
        assert status == 200 and got == {"stored": [{"sha256": digest(d), "size": len(d)} for d in datas],
                                         "bytes": sum(map(len, datas))}
    status, got = conn.call("POST", "/v1/blobs/missing", json.dumps({"hashes": [digest(d) for d in small + large]}).encode(),
                            content_type="application/json")
    assert status == 200 and got == {"missing": [], "partial": {}}
    assert runs == ["BundleSink", "BundleSink"]
    for data in large:
        assert b"".join(blobs.read(digest(data))) == data
    settled(blobs)


def test_a_put_is_read_raw_and_a_wrong_one_refused(served):
    conn, blobs, runs, _, _ = served
    data = os.urandom(3 << 20)
    assert conn.call("PUT", f"/v1/blobs/{digest(data)}", data) == (200, {"sha256": digest(data), "size": len(data)})
    status, got = conn.call("PUT", f"/v1/blobs/{digest(b'claimed')}", data)
    assert status == 400 and got["error"]["code"] == "hash_mismatch"
    assert conn.call("PUT", f"/v1/blobs/{digest(b'')}", b"") == (200, {"sha256": digest(b""), "size": 0})
    assert runs == ["BlobSink"] * 3 and blobs.missing([digest(data), digest(b"claimed")]) == [digest(b"claimed")]
    settled(blobs)


def test_a_wrong_hash_mid_body_keeps_the_blobs_before_it_and_the_connection(served):
    conn, blobs, runs, _, _ = served
    before, after = os.urandom(400_000), os.urandom(400_000)
    bad = os.urandom(1 << 20)
    body = record(before) + record(bad, digest(b"something else")) + record(after)
    status, got = conn.call("POST", "/v1/blobs/bundle", body)
    assert status == 400 and got["error"]["code"] == "hash_mismatch"
    assert "the 1 blob(s) before it were stored" in got["error"]["message"]
    assert blobs.missing([digest(before), digest(after), digest(b"something else")]) == [digest(after), digest(b"something else")]
    assert conn.call("POST", "/v1/blobs/bundle", record(after))[0] == 200  # the same connection, read past the refusal
    assert runs == ["BundleSink", "BundleSink"]
    settled(blobs)


def test_a_full_disk_is_answered_507_and_leaves_nothing_half_written(served, monkeypatch, caplog):
    """errors Rule 5."""
    import errno
    import logging

    from owncdn import packs

    conn, blobs, _, _, _ = served

    def full(fd, buffers):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(packs.os, "writev", full)
    datas = [os.urandom(300_000), b"small"]
    with caplog.at_level(logging.ERROR, logger="owncdn.control.api"):
        status, got = conn.call("POST", "/v1/blobs/bundle", b"".join(map(record, datas)))
    assert status == 507 and got["error"]["code"] == "no_space"
    assert "disk is full" in got["error"]["message"] and "owncdn blobs gc" in got["error"]["message"]
    assert any("no space left on the control plane's disk" in r.getMessage() for r in caplog.records)
    settled(blobs)
    monkeypatch.undo()
    assert conn.call("POST", "/v1/blobs/bundle", b"".join(map(record, datas)))[0] == 200   # once there is room


def test_a_blob_over_the_store_s_limit_is_refused_naming_the_option(served, monkeypatch):
    conn, blobs, _, _, _ = served
    monkeypatch.setattr(blobs, "max_bytes", 100_000)
    big = os.urandom(100_001)
    status, got = conn.call("POST", "/v1/blobs/bundle", record(b"small") + record(big))
    assert status == 413 and got["error"]["code"] == "too_large"
    assert "(the control plane's --max-blob-size); the 1 blob(s) before it were stored" in got["error"]["message"]
    status, got = conn.call("PUT", f"/v1/blobs/{digest(big)}", big)
    assert status == 413 and got["error"]["message"].endswith("(the control plane's --max-blob-size)")


def test_an_unforeseen_error_is_answered_in_the_api_s_json_shape(served, monkeypatch):
    from owncdn import packs

    conn, blobs, _, _, _ = served

    def broken(fd, buffers):
        raise RuntimeError("a bug")

    monkeypatch.setattr(packs.os, "writev", broken)
    conn.send("POST", "/v1/blobs/bundle", record(os.urandom(300_000)))
    status, fields, body = conn.answer()
    assert status == 500 and fields["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "internal_error"


@pytest.mark.parametrize("body, kept", [
    (record(b"fine") + b"not a header\n", False),  # in the piece that held "fine": its events never came
    (record(b"fine") + header(digest(b"cut"), 10) + b"cut", True),  # ends inside a record
])
def test_a_malformed_bundle_is_refused_as_through_asgi(served, tmp_path, body, kept):
    conn, blobs, runs, _, _ = served
    status, got = conn.call("POST", "/v1/blobs/bundle", body)
    asgi_status, asgi_got, asgi_blobs = through_asgi(tmp_path, "POST", "/v1/blobs/bundle", body)
    assert (status, got["error"]["code"]) == (asgi_status, asgi_got["error"]["code"]) == (400, "bad_bundle")
    assert blobs.missing([digest(b"fine")]) == asgi_blobs.missing([digest(b"fine")]) == ([] if kept else [digest(b"fine")])
    assert runs == ["BundleSink"]
    settled(blobs)


def through_asgi(tmp_path, method: str, path: str, body: bytes,
                 headers: dict | None = None) -> tuple[int, dict, DirBlobStore]:
    """The same request to a second control plane through an ASGI transport (no socket)."""
    import asyncio

    extra = headers

    store = Store(sqlite_url(tmp_path / "asgi"))
    store.migrate()
    token = store.create_token("ci", {"deploy", "read", "admin"})[1]
    blobs = DirBlobStore(tmp_path / "asgi" / "blobs")
    app = create_app(store, blobs=blobs)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            headers = {"Authorization": f"Bearer {token}"}
            await http.post("/v1/envs/production/versions", json={"source": SITE}, headers=headers)
            return await http.request(method, path, content=body, headers={**headers, **(extra or {})})

    try:
        got = asyncio.run(go())
    finally:
        store.close()
    return got.status_code, got.json(), blobs


def test_the_same_answers_through_asgi(served, tmp_path):
    conn, blobs, runs, _, _ = served
    datas = [b"a", os.urandom(200_000), os.urandom(1_500_000)]
    for body in (b"".join(map(record, datas)), record(b"a") + record(b"b", digest(b"c")), b""):
        assert conn.call("POST", "/v1/blobs/bundle", body) == through_asgi(tmp_path / str(len(runs)), "POST", "/v1/blobs/bundle", body)[:2]
    assert runs == ["BundleSink"] * 3
    settled(blobs)


def canonical(m: dict) -> bytes:
    return json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def release_body(files: dict[str, bytes], name: str | None = None) -> bytes:
    m = canonical({"files": {path: {"blob": digest(d), "size": len(d)} for path, d in files.items()}})
    import hashlib

    return record(m, name or hashlib.sha256(m).hexdigest()) + b"".join(record(d) for d in files.values())


def test_a_release_bundle_is_read_raw_its_manifest_checked_first(served):
    conn, blobs, runs, _, _ = served
    assert conn.call("POST", "/v1/envs/production/versions", json.dumps({"source": SITE}).encode(),
                     content_type="application/json")[0] < 300
    big = os.urandom(2 << 20)
    status, got = conn.call("POST", "/v1/services/blog/releases/bundle?env=production",
                            release_body({"index.html": b"<h1>hi</h1>", "big.bin": big}))
    assert status == 201 and got["number"] == 1
    status, got = conn.call("POST", "/v1/services/blog/releases/bundle?env=production",
                            release_body({"x.bin": os.urandom(1 << 20)}, name="0" * 64))
    assert status == 400 and got["error"]["code"] == "hash_mismatch"  # the manifest's: nothing stored
    assert conn.call("POST", "/v1/services/blog/releases/bundle?env=production", release_body({"y": b"y"}))[0] == 201
    assert runs == ["BundleSink"] * 3 and blobs.missing([digest(big), digest(b"y")]) == []
    settled(blobs)


def test_a_release_bundle_read_raw_receives_its_blobs_while_its_manifest_is_checked(served, monkeypatch):
    """releases Rule 13, uploadsink Rule 4: the check runs in a thread of its own while the
    blobs after it arrive (into temp files); a refusal there stores none of them."""
    from owncdn.control.api import releases

    conn, blobs, runs, _, _ = served
    assert conn.call("POST", "/v1/envs/production/versions", json.dumps({"source": SITE}).encode(),
                     content_type="application/json")[0] < 300
    threads, real, refuse = [], releases._manifest_record, []

    def spied(*args):
        threads.append(threading.current_thread().name)
        deadline = time.monotonic() + 5
        while not leftovers(blobs) and time.monotonic() < deadline:  # the blob arrives meanwhile
            time.sleep(0.005)
        assert leftovers(blobs), "the blob was not received while the manifest was checked"
        if refuse:
            raise releases.ApiProblem(422, "invalid_manifest", "refused by the test")
        return real(*args)

    monkeypatch.setattr(releases, "_manifest_record", spied)
    status, got = conn.call("POST", "/v1/services/blog/releases/bundle?env=production", release_body({"a": b"a"}))
    assert status == 201 and runs == ["BundleSink"]
    assert len(threads) == 1 and threads[0].startswith("manifest-check")  # not the receiving thread
    refuse.append(True)
    status, got = conn.call("POST", "/v1/services/blog/releases/bundle?env=production", release_body({"b": b"b"}))
    assert status == 422 and got["error"]["message"] == "refused by the test"
    assert blobs.missing([digest(b"a"), digest(b"b")]) == [digest(b"b")]  # nothing stored, no temp file left
    settled(blobs)


def test_a_client_that_vanishes_mid_body_leaves_only_whole_blobs(served):
    conn, blobs, runs, _, _ = served
    whole, cut = os.urandom(300_000), os.urandom(2 << 20)
    body = record(whole) + record(cut)
    conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", len(body)) + body[:len(body) // 2])
    time.sleep(0.2)
    conn.sock.close()
    settled(blobs)
    assert runs == ["BundleSink"] and blobs.missing([digest(whole), digest(cut)]) == [digest(cut)]


def test_uploads_received_at_once_share_one_buffer(served, monkeypatch):
    """rawbody Rule 2: the buffer is taken per piece in the turn, so 4 uploads held by 4
    receiving threads at once read into one buffer (not one per thread), and each
    stores its own bytes."""
    conn, blobs, runs, server, token = served
    seen: set[int] = set()
    real = rawbody._Receivers.buffer

    def buffer(self):
        views = real(self)
        seen.add(id(views[0].obj))
        return views

    monkeypatch.setattr(rawbody._Receivers, "buffer", buffer)
    conns = [conn] + [Conn(server.port, token) for _ in range(3)]
    datas = [os.urandom(3 << 20) for _ in conns]
    bodies = [record(data) for data in datas]
    for c, body in zip(conns, bodies):  # every upload begun (a thread each) before any ends
        c.sock.sendall(c.head("POST", "/v1/blobs/bundle", len(body)) + body[:1 << 20])
    time.sleep(0.2)
    for c, body in zip(conns, bodies):
        c.sock.sendall(body[1 << 20:])
    answers = [c.answer() for c in conns]
    assert [a[0] for a in answers] == [200] * 4 and runs == ["BundleSink"] * 4
    assert blobs.missing([digest(data) for data in datas]) == []
    assert len(seen) == 1
    for c in conns[1:]:
        c.close()
    settled(blobs)


def test_a_waiting_fetch_gets_a_bundles_blobs_while_the_bundle_is_flushed(served, monkeypatch):
    """uploadsink Rule 3, blobs Rule 4b: read raw, a bundle's verified blobs land before
    its flush; the edge waiting for them has them all before that flush ended."""
    conn, blobs, runs, server, token = served
    datas = [os.urandom(3000 + i) for i in range(20)]
    names = [digest(d) for d in datas]
    looked, flushing_may_end, order, got = threading.Event(), threading.Event(), [], {}
    sizes, flush = blobs.sizes, PackWriter.commit
    blobs.sizes = lambda hashes: looked.set() or sizes(hashes)

    def slow_flush(writer):
        flushing_may_end.wait(10)
        order.append("flushed")
        return flush(writer)

    def fetch():
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            got["answer"] = http.post("/v1/blobs/fetch", json={"hashes": names, "wait": 20},
                                      headers={"Authorization": f"Bearer {token}"})
        order.append("fetched")
        flushing_may_end.set()

    monkeypatch.setattr(PackWriter, "commit", slow_flush)
    fetcher = threading.Thread(target=fetch)
    fetcher.start()
    assert looked.wait(10)  # the fetch found none and waits for them to land
    status, stored = conn.call("POST", "/v1/blobs/bundle", b"".join(map(record, datas)))
    fetcher.join()
    assert status == 200 and len(stored["stored"]) == len(datas)
    assert order == ["fetched", "flushed"]
    body = got["answer"].content  # the records in the order they landed
    assert got["answer"].status_code == 200 and len(body) == sum(len(record(d)) for d in datas)
    assert all(record(d) in body for d in datas)
    assert blobs.missing(names) == [] and blobs._offered == {}
    settled(blobs)


def test_a_fetch_begun_between_a_blobs_early_landing_and_its_storing_still_gets_it(served, monkeypatch):
    """blobs Rule 4b: the fetch's look at the store misses the blob (not stored yet) and
    the log had it before the fetch began; it lands again once stored, so the fetch
    gets it then from the log, not from a look at the store once its wait is over."""
    from owncdn.control.api import blobs as blob_api

    monkeypatch.setattr(blob_api, "RECHECK_SECONDS", 60.0)  # beyond the fetch's wait: no re-check saves it
    conn, blobs, runs, server, token = served
    data = os.urandom(5000)
    looked, looks, got = threading.Event(), [], {}
    sizes, flush = blobs.sizes, PackWriter.commit

    def look(hashes):
        found = sizes(hashes)
        looks.append(found)
        looked.set()  # once looked: the blob is not stored yet
        return found

    blobs.sizes = look

    def fetch():
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            got["answer"] = http.post("/v1/blobs/fetch", json={"hashes": [digest(data)], "wait": 5},
                                      headers={"Authorization": f"Bearer {token}"})

    fetcher = threading.Thread(target=fetch)

    def flush_once_the_fetch_looked(writer):  # the blob landed already; not stored yet
        fetcher.start()
        assert looked.wait(10)
        return flush(writer)

    monkeypatch.setattr(PackWriter, "commit", flush_once_the_fetch_looked)
    assert conn.call("POST", "/v1/blobs/bundle", record(data))[0] == 200
    fetcher.join()
    assert got["answer"].status_code == 200 and got["answer"].content == record(data)
    assert looks == [{digest(data): None}]  # from the log, not from a look at the store when its wait ended
    settled(blobs)


def test_a_stalled_client_is_dropped(served, monkeypatch):
    conn, blobs, runs, _, _ = served
    monkeypatch.setattr(rawbody, "STALL_SECONDS", 0.3)
    monkeypatch.setattr(rawbody, "POLL_SECONDS", 0.05)
    data = os.urandom(2 << 20)
    body = record(data)
    conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", len(body)) + body[:1 << 20])
    assert conn.closed_by_server(within=20)  # after the 0.3 s stall, not the 60 s default
    settled(blobs)
    assert runs == ["BundleSink"] and blobs.missing([digest(data)]) == [digest(data)]


def test_a_pipelined_request_after_a_raw_body_is_served(served):
    conn, blobs, runs, _, _ = served
    data = os.urandom(3 << 20)
    body = record(data)
    conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", len(body)) + body
                      + conn.head("GET", f"/v1/blobs/{digest(data)}", None, Range="bytes=0-9"))
    first, second = conn.answer(), conn.answer()
    assert first[0] == 200 and json.loads(first[2])["bytes"] == len(data)
    assert second[0] == 206 and second[2] == data[:10]
    settled(blobs)


def test_expect_100_continue_is_answered_before_the_body(served):
    conn, blobs, runs, _, _ = served
    data = os.urandom(1 << 20)
    body = record(data)
    conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", len(body), Expect="100-continue"))
    interim = b""
    while b"\r\n\r\n" not in interim:
        interim += conn.sock.recv(1)
    assert interim.startswith(b"HTTP/1.1 100")
    conn.sock.sendall(body)
    status, _, got = conn.answer()
    assert status == 200 and json.loads(got)["bytes"] == len(data) and runs == ["BundleSink"]
    settled(blobs)


def test_http_1_0_and_chunked_bodies_go_through_asgi(served):
    conn, blobs, runs, server, token = served
    data = os.urandom(100_000)
    body = record(data)
    conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", len(body), version="1.0") + body)
    status, _, got = conn.answer()
    assert status == 200 and json.loads(got)["bytes"] == len(data)
    chunked = Conn(server.port, token)
    try:
        other = os.urandom(70_000)
        piece = record(other)
        chunked.sock.sendall(chunked.head("POST", "/v1/blobs/bundle", None, Transfer_Encoding="chunked")
                             + b"%x\r\n" % len(piece) + piece + b"\r\n0\r\n\r\n")
        status, _, got = chunked.answer()
        assert status == 200 and json.loads(got)["bytes"] == len(other)
    finally:
        chunked.close()
    assert runs == [] and blobs.missing([digest(data), digest(other)]) == []


def test_beyond_the_receivers_the_body_goes_through_asgi(served, monkeypatch):
    conn, blobs, runs, _, _ = served
    monkeypatch.setattr(rawbody._RECEIVERS, "limit", 0)
    data = os.urandom(1 << 20)
    assert conn.call("POST", "/v1/blobs/bundle", record(data))[0] == 200
    assert runs == [] and blobs.missing([digest(data)]) == []
