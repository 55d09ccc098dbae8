"""A blob streamed to an edge while it is uploaded (control/api/arriving.py): a real
control plane on uvicorn, an upload written by hand in two halves, and a reader that
must get the first half before the second is sent. The streams' safety re-check is
set to a minute here, past the readers' 10 s socket timeout: a stream that was not
woken by the upload's writes fails these tests."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from owncdn.control.api import arriving
from owncdn.control.api.arriving import Growing
from owncdn.core.content.digest import digest
from owncdn.core.http.chunked import ChunkedDecoder
from tests.control import test_rawbody
from tests.control.test_rawbody import Conn

served = test_rawbody.served  # the fixture, shared

BLOB = os.urandom(3 << 20)


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch):
    monkeypatch.setattr(arriving, "STREAM_RECHECK_SECONDS", 60.0)


class Reader:
    """A GET read by hand: its status, then the body's bytes as they come."""

    def __init__(self, port: int, token: str, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        self.raw, self.body, self.ended, self.cut = b"", bytearray(), False, False
        while b"\r\n\r\n" not in self.raw:
            self.raw += self.sock.recv(1 << 16)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        self.chunked = self.fields.get("transfer-encoding") == "chunked"
        self.decoder = ChunkedDecoder()
        self._take(b"")

    def _take(self, got: bytes) -> None:
        self.raw += got
        if self.chunked:
            pieces, used = self.decoder.feed(self.raw)
            self.body += b"".join(pieces)
            self.raw = self.raw[used:]
            self.ended = self.decoder.done
        else:
            self.body += self.raw
            self.raw = b""
            self.ended = len(self.body) >= int(self.fields.get("content-length", 0))

    def until(self, count: int) -> None:
        """Read until ``count`` body bytes came, the body ended, or the server closed."""
        while len(self.body) < count and not self.ended:
            got = self.sock.recv(1 << 20)
            if not got:
                self.cut = True
                return
            self._take(got)

    def close(self) -> None:
        self.sock.close()


def upload_half(conn: Conn, name: str, data: bytes) -> None:
    conn.sock.sendall(conn.head("PUT", f"/v1/blobs/{name}", len(data)) + data[:len(data) // 2])


def test_an_upload_in_progress_is_streamed_as_it_is_written(served):
    conn, blobs, runs, server, token = served
    name = digest(BLOB)
    upload_half(conn, name, BLOB)
    reader = Reader(server.port, token, f"/v1/blobs/{name}/arriving?wait=10")
    try:
        assert reader.status == 200 and reader.chunked
        reader.until(len(BLOB) // 2)  # before the second half is sent
        assert bytes(reader.body) == BLOB[:len(BLOB) // 2]
        conn.sock.sendall(BLOB[len(BLOB) // 2:])
        status, _, _ = conn.answer()
        assert status == 200 and runs == ["BlobSink"]
        reader.until(len(BLOB) + 1)
        assert reader.ended and not reader.cut and bytes(reader.body) == BLOB
    finally:
        reader.close()
    assert blobs.size(name) == len(BLOB)


def test_a_refused_upload_cuts_the_stream_before_its_end(served):
    conn, blobs, _, server, token = served
    name = digest(b"other bytes")  # the body will not hash to it
    upload_half(conn, name, BLOB)
    reader = Reader(server.port, token, f"/v1/blobs/{name}/arriving?wait=10")
    try:
        reader.until(len(BLOB) // 2)
        assert len(reader.body) == len(BLOB) // 2 and not reader.cut
        conn.sock.sendall(BLOB[len(BLOB) // 2:])
        status, _, _ = conn.answer()
        assert status == 400
        reader.until(len(BLOB) + 1)
        assert reader.cut and not reader.ended  # no last chunk: the reader cannot take it for whole
    finally:
        reader.close()
    assert blobs.size(name) is None


def test_a_reader_waits_for_the_upload_to_begin(served):
    conn, blobs, _, server, token = served
    name = digest(BLOB)
    got = {}

    def read():
        reader = Reader(server.port, token, f"/v1/blobs/{name}/arriving?wait=10")
        reader.until(len(BLOB) + 1)
        got["reader"] = reader
        reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    upload_half(conn, name, BLOB)
    conn.sock.sendall(BLOB[len(BLOB) // 2:])
    assert conn.answer()[0] == 200
    thread.join(20)
    reader = got["reader"]
    assert reader.status == 200 and reader.ended and bytes(reader.body) == BLOB


def test_a_stored_blob_comes_whole_and_none_arriving_is_a_404(served):
    conn, blobs, _, server, token = served
    name = digest(BLOB)
    status, _ = conn.call("PUT", f"/v1/blobs/{name}", BLOB)
    assert status == 200
    reader = Reader(server.port, token, f"/v1/blobs/{name}/arriving?wait=10")
    reader.until(len(BLOB) + 1)
    reader.close()
    assert reader.status == 200 and reader.ended and bytes(reader.body) == BLOB
    missing = Reader(server.port, token, f"/v1/blobs/{digest(b'never')}/arriving?wait=0.2")
    missing.close()
    assert missing.status == 404
    nobody = Reader(server.port, "not-a-token", f"/v1/blobs/{name}/arriving")
    nobody.close()
    assert nobody.status == 401


# (what the writer does from its thread, what the stream saw before it waited)
WAKES = [
    ("bytes written", lambda g: g.advance(10), (0, "writing")),
    ("the upload verified", lambda g: g.end("verified"), (0, "writing")),
    ("the upload failed", lambda g: g.end("failed"), (0, "writing")),
]


@pytest.mark.parametrize("what, write, seen", WAKES, ids=[w[0] for w in WAKES])
async def test_rule_2_a_caught_up_stream_is_woken_by_its_writer(what, write, seen):
    growing = Growing(digest(b"x"), 100)
    waiting = asyncio.create_task(growing.changed(*seen))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # nothing changed yet, and no poll ends the wait
    threading.Thread(target=write, args=(growing,)).start()
    async with asyncio.timeout(5):  # the re-check is a minute away
        await waiting
    assert growing._waiters == []


async def test_rule_2_a_change_before_the_wait_returns_at_once():
    growing = Growing(digest(b"x"), 100)
    growing.advance(40)
    async with asyncio.timeout(5):
        await growing.changed(0, "writing")  # the stream saw 0 bytes; 40 are there
    assert growing._waiters == []
