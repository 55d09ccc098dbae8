"""Blob downloads sent with sendfile (control/api/sendfile.py), on uvicorn on loopback,
and the same answers through ASGI where there is no connection to send on."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app, sendfile
from owncdn.control.api.blobs import Landed
from owncdn.control.blobs import BlobNotFound
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url
from owncdn.core.content.bundle import header


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle(*blobs: bytes) -> bytes:
    return b"".join(header(sha(b), len(b)) + b for b in blobs)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A control plane with a directory store on loopback; ``chunks`` counts what went by sendfile."""
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    chunks: list[int] = []
    real = sendfile._send_chunk

    def counted(fd, store_, parts, stop):
        chunks.append(len(parts))
        return real(fd, store_, parts, stop)

    monkeypatch.setattr(sendfile, "_send_chunk", counted)
    app = create_app(store, blobs=blobs)
    with ApiServer(app) as server:
        token = store.create_token("reader", {"read", "deploy"})[1]
        with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
            yield http, blobs, chunks, server, token
    store.close()


def put(blobs: DirBlobStore, *datas: bytes) -> None:
    for data in datas:
        blobs.put(sha(data), data)


def test_a_bundle_goes_by_sendfile_in_one_chunk_and_the_connection_stays_usable(served):
    http, blobs, chunks, _, _ = served
    datas = [os.urandom(n) for n in (0, 1, 70_000, 300_000)]
    put(blobs, *datas)
    hashes = [sha(d) for d in datas]
    for _ in range(2):  # the same keep-alive connection, twice
        got = http.post("/v1/blobs/fetch", json={"hashes": hashes + hashes[:1]})
        assert got.status_code == 200 and got.content == bundle(*datas)
        assert got.headers["transfer-encoding"] == "chunked" and "content-length" not in got.headers
    assert chunks == [4, 4]
    assert http.post("/v1/blobs/missing", json={"hashes": hashes}).json() == {"missing": [], "partial": {}}
    assert sendfile._POOL.active == 0


def test_a_bundle_uploads_records_go_back_out_with_one_sendfile(served, monkeypatch):
    """dirblobs Rule 6: a bundle upload is read raw into a headed pack; fetched, its
    records leave in one span (the first header, then one sendfile), whatever the
    order asked: they go as they lie in the pack, loose blobs after them."""
    http, blobs, chunks, _, _ = served
    datas = [os.urandom(n) for n in (5000, 0, 1, 70_000, 300_000)]
    assert http.post("/v1/blobs/bundle", content=bundle(*datas)).status_code == 200
    spans, sent = [], []
    real_run, real_sendfile = blobs.open_run, os.sendfile

    def run(parts, i):
        opened = real_run(parts, i)
        spans.append(opened[3])  # how many records the span holds
        return opened

    def counted(out, blob, offset, count):
        sent.append(count)
        return real_sendfile(out, blob, offset, count)

    monkeypatch.setattr(blobs, "open_run", run)
    monkeypatch.setattr(os, "sendfile", counted)
    got = http.post("/v1/blobs/fetch", json={"hashes": [sha(d) for d in datas]})
    assert got.content == bundle(*datas) and chunks == [5]
    assert spans == [5] and sum(sent) == len(bundle(*datas)) - len(header(sha(datas[0]), 5000))
    spans.clear()
    got = http.post("/v1/blobs/fetch", json={"hashes": [sha(d) for d in reversed(datas)]})
    assert got.content == bundle(*datas) and spans == [5]  # asked in another order: sent as they lie (Rule 6)
    put(blobs, b"loose", b"too")
    spans.clear()
    got = http.post("/v1/blobs/fetch", json={"hashes": [sha(b"too"), sha(datas[4]), sha(b"loose"), sha(datas[3])]})
    assert got.content == bundle(datas[3], datas[4], b"too", b"loose") and spans == [2, 1, 1]


def test_the_landed_log_gives_blobs_in_the_order_they_were_stored():
    """A waiting fetch sends what landed in this order (api/blobs.py Rule 4b): a bundle's
    blobs as in its pack, one span."""
    log = Landed(keep=4)
    log.add([("c", 3), ("a", 1)])
    seq, new = log.since(0)
    assert (seq, list(new.items())) == (2, [("c", 3), ("a", 1)])
    log.add([("b", 2), ("d", 4)])
    assert list(log.since(seq)[1].items()) == [("b", 2), ("d", 4)]
    log.add([("e", 5)])
    assert log.since(0) == (5, None)  # "c" forgotten: the fetch looks at the store again


def test_a_waiting_fetch_sends_a_chunk_per_round(served):
    http, blobs, chunks, _, _ = served
    put(blobs, b"here")
    later = os.urandom(5000)

    def upload_soon():
        time.sleep(0.3)
        assert http.put(f"/v1/blobs/{sha(later)}", content=later).status_code == 200

    uploader = threading.Thread(target=upload_soon)
    uploader.start()
    got = http.post("/v1/blobs/fetch", json={"hashes": [sha(b"here"), sha(later)], "wait": 5.0})
    uploader.join()
    assert got.content == bundle(b"here", later) and chunks == [1, 1]


def test_beyond_the_senders_the_answer_goes_through_asgi(served, monkeypatch):
    http, blobs, chunks, _, _ = served
    monkeypatch.setattr(sendfile._POOL, "limit", 0)
    datas = [os.urandom(70_000), os.urandom(2 << 20)]
    put(blobs, *datas)
    got = http.post("/v1/blobs/fetch", json={"hashes": [sha(datas[0])]})
    assert got.content == bundle(datas[0]) and got.headers["transfer-encoding"] == "chunked"
    assert http.get(f"/v1/blobs/{sha(datas[1])}", headers={"Range": "bytes=7-"}).content == datas[1][7:]
    assert chunks == [] and sendfile._POOL.active == 0


def test_a_large_blob_and_its_ranges_go_by_sendfile(served):
    http, blobs, chunks, _, _ = served
    data = os.urandom(3 << 20)
    put(blobs, data)
    got = http.get(f"/v1/blobs/{sha(data)}")
    assert got.status_code == 200 and got.content == data and got.headers["etag"] == f'"{sha(data)}"'
    part = http.get(f"/v1/blobs/{sha(data)}", headers={"Range": "bytes=1000000-"})
    assert part.status_code == 206 and part.content == data[1_000_000:]
    assert part.headers["content-range"] == f"bytes 1000000-{len(data) - 1}/{len(data)}"
    middle = http.get(f"/v1/blobs/{sha(data)}", headers={"Range": "bytes=5-2000000"})
    assert middle.status_code == 206 and middle.content == data[5:2_000_001]
    assert chunks == [1, 1, 1]


def test_without_a_connection_to_send_on_the_answers_are_the_same(tmp_path):
    """Through an ASGI transport (no socket): the bundle is streamed with its length."""
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    datas = [b"one", os.urandom(200_000), os.urandom(2 << 20)]
    put(blobs, *datas)
    token = store.create_token("reader", {"read"})[1]
    app = create_app(store, blobs=blobs)

    async def fetch():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://control",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            small = await http.post("/v1/blobs/fetch", json={"hashes": [sha(d) for d in datas[:2]]})
            large = await http.get(f"/v1/blobs/{sha(datas[2])}", headers={"Range": "bytes=10-"})
            return small, large

    small, large = asyncio.run(fetch())
    assert small.content == bundle(*datas[:2]) and small.headers["content-length"] == str(len(small.content))
    assert large.status_code == 206 and large.content == datas[2][10:]
    store.close()


def _raw_fetch(server, token: str, hashes: list[str], rcvbuf: int | None = None, version: str = "1.1") -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    body = ('{"hashes": [%s]}' % ", ".join(f'"{h}"' for h in hashes)).encode()
    sock.sendall(b"POST /v1/blobs/fetch HTTP/%s\r\nHost: control" % version.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return sock


def _wait_idle(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while sendfile._POOL.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sendfile._POOL.active == 0


def test_an_http_1_0_client_gets_the_bundle_with_its_length(served):
    http, blobs, chunks, server, token = served
    data = os.urandom(50_000)
    put(blobs, data)
    sock = _raw_fetch(server, token, [sha(data)], version="1.0")
    sock.settimeout(10)
    answer = b""
    while piece := sock.recv(1 << 16):
        answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert f"content-length: {len(body)}".encode() in head.lower() and body == bundle(data)
    assert chunks == []


def test_a_client_that_goes_away_midway_frees_its_sender(served):
    http, blobs, chunks, server, token = served
    datas = [os.urandom(1 << 20) for _ in range(12)]
    put(blobs, *datas)
    sock = _raw_fetch(server, token, [sha(d) for d in datas])
    assert sock.recv(1000).startswith(b"HTTP/1.1 200")
    sock.close()
    _wait_idle()
    assert http.post("/v1/blobs/fetch", json={"hashes": [sha(datas[0])]}).content == bundle(datas[0])


def test_a_client_that_stops_reading_is_cut_off(served, monkeypatch):
    http, blobs, chunks, server, token = served
    monkeypatch.setattr(sendfile, "STALL_SECONDS", 0.3)
    monkeypatch.setattr(sendfile, "POLL_SECONDS", 0.05)
    datas = [os.urandom(1 << 20) for _ in range(24)]
    put(blobs, *datas)
    sock = _raw_fetch(server, token, [sha(d) for d in datas], rcvbuf=4096)
    assert sock.recv(1000).startswith(b"HTTP/1.1 200")
    _wait_idle(timeout=5)  # it gave up while the client, connected, read nothing more
    sock.close()
    assert http.post("/v1/blobs/fetch", json={"hashes": [sha(datas[1])]}).content == bundle(datas[1])


def test_a_blob_gone_midway_cuts_the_bundle_off(served, monkeypatch):
    http, blobs, chunks, _, _ = served
    datas = [os.urandom(100_000), os.urandom(100_000)]
    put(blobs, *datas)
    real = blobs._open  # what open_blob and open_run open blobs with

    def gone(name):
        if name == sha(datas[1]):
            raise BlobNotFound(f"no blob {name}")
        return real(name)

    monkeypatch.setattr(blobs, "_open", gone)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/blobs/fetch", json={"hashes": [sha(d) for d in datas]})
    _wait_idle()
