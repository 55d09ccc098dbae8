"""A large blob fetched into its partial file in a worker thread (edge/blobdownload.py):
against the scripted raw server of test_bundlefetch, each row says what the partial
file held, how the server answered, and what the file, the hash and the request became."""

from __future__ import annotations

import pytest

from owncdn.core.content.digest import name_of
from owncdn.edge.blobdownload import BlobDownload, BlobTooLong
from owncdn.edge.bundlefetch import BlobConnections
from owncdn.edge.upstream import OriginProtocolError, Timeouts
from tests.edge.test_bundlefetch import Script, chunked, sha

BLOB = bytes(range(256)) * 5000  # 1.28 MB: more than one receive buffer


def answer(status: str, body: bytes, **fields: str) -> bytes:
    head = [f"HTTP/1.1 {status}", *(f"{k.replace('_', '-')}: {v}" for k, v in fields.items())]
    if "transfer_encoding" not in fields:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


ROWS = [
    # (what, partial file before, server's answer, Range asked, error, file after)
    ("fresh", None, answer("200 OK", BLOB), None, None, BLOB),
    ("fresh, chunked", None, answer("200 OK", chunked(BLOB, 70_000), transfer_encoding="chunked"), None, None, BLOB),
    ("resumed", BLOB[:300_000], answer("206 Partial Content", BLOB[300_000:]), "bytes=300000-", None, BLOB),
    ("range ignored: over", BLOB[:1000], answer("200 OK", BLOB), "bytes=1000-", None, BLOB),
    ("partial too long: over", BLOB + b"x", answer("200 OK", BLOB), None, None, BLOB),
    ("more than its size", None, answer("200 OK", BLOB + b"extra"), None, BlobTooLong, None),
    ("not there", BLOB[:10], answer("404 Not Found", b'{"error":{}}'), "bytes=10-", None, BLOB[:10]),
    ("cut off: kept", None, answer("200 OK", BLOB)[:700_000], None, OriginProtocolError, "prefix"),
]


@pytest.mark.parametrize("what, before, reply, asked, error, after", ROWS, ids=[r[0] for r in ROWS])
def test_a_blob_download(tmp_path, what, before, reply, asked, error, after):
    server = Script()
    try:
        server.answer(reply, step=65536, then="close" if what.startswith("cut") else "keep")
        part = tmp_path / "blob.part"
        if before is not None:
            part.write_bytes(before)
        counted = []
        conns = BlobConnections(server.address, Timeouts(connect=2, first_byte=2, idle=2))
        job = BlobDownload(conns, f"/v1/blobs/{sha(BLOB)}", [("Host", "cp")], sha(BLOB), len(BLOB), part,
                           counted.append)
        outcome = job.run()
        request = server.requests[0].decode()
        assert request.startswith(f"GET /v1/blobs/{sha(BLOB)} HTTP/1.1\r\n")
        assert (f"Range: {asked}\r\n" in request) if asked else "Range:" not in request
        if error is not None:
            assert isinstance(outcome.error, error), outcome
        else:
            assert outcome.error is None, outcome.error
        data = part.read_bytes()
        if after == "prefix":
            assert 0 < len(data) < len(BLOB) and BLOB.startswith(data) and job.have == len(data)
        elif after is not None:
            assert data == after
        if after is BLOB:
            assert outcome.status in (200, 206) and job.have == len(BLOB) and name_of(job.digest) == sha(BLOB)
            assert sum(counted) == len(BLOB) - (len(before) if outcome.status == 206 else 0)
        if what == "not there":
            assert outcome.status == 404 and not counted
    finally:
        server.close()


def test_the_connection_is_kept_for_the_next_download(tmp_path):
    server = Script()
    try:
        conns = BlobConnections(server.address, Timeouts(connect=2, first_byte=2, idle=2))
        for i in range(2):
            server.answer(answer("200 OK", BLOB))
            job = BlobDownload(conns, "/v1/blobs/x", [("Host", "cp")], sha(BLOB), len(BLOB),
                               tmp_path / f"{i}.part", lambda n: None)
            assert job.run().error is None and (tmp_path / f"{i}.part").read_bytes() == BLOB
        assert server.connections == 1 and conns.opened == 1
    finally:
        server.close()


def test_the_writeback_is_begun_as_the_file_is_written(tmp_path, monkeypatch):
    """Rule 5: from where a resumed file ended, in steps, each range where the last ended."""
    begun = []
    monkeypatch.setattr("owncdn.edge.blobdownload.WRITEBACK_STEP", 256 << 10)
    monkeypatch.setattr("owncdn.edge.blobdownload.start_writeback",
                        lambda fd, offset, count: begun.append((offset, count)))
    server = Script()
    try:
        server.answer(answer("206 Partial Content", BLOB[100_000:]), step=65536)
        part = tmp_path / "blob.part"
        part.write_bytes(BLOB[:100_000])
        job = BlobDownload(BlobConnections(server.address, Timeouts(connect=2, first_byte=2, idle=2)), "/b",
                           [("Host", "cp")], sha(BLOB), len(BLOB), part, lambda n: None)
        assert job.run().error is None and part.read_bytes() == BLOB
    finally:
        server.close()
    assert begun[0][0] == 100_000 and all(count >= 256 << 10 for _, count in begun)
    assert all(a + n == b for (a, n), (b, _) in zip(begun, begun[1:]))
    assert begun[-1][0] + begun[-1][1] > len(BLOB) - (256 << 10)
