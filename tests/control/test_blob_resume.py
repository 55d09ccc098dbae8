"""A blob upload that broke, resumed where it stopped (control/partials.py, dirblobs Rule 9,
api/blobs.py Rule 7): what a cut PUT keeps, the missing answer, a PUT with Content-Range
read raw and through ASGI, its refusals, restarts and collection."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from owncdn.control.api import inflight
from owncdn.control.blobgc import PARTIAL_KEEP, collect_blobs
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.partials import PartialGone, Partials
from owncdn.core.content.digest import digest
from owncdn.core.content.retention import Retention
from tests.control import test_rawbody
from tests.control.test_rawbody import Conn, leftovers

served = test_rawbody.served  # the fixture, shared
MiB = 1 << 20


def missing(conn: Conn, *names: str) -> dict:
    status, got = conn.call("POST", "/v1/blobs/missing", json.dumps({"hashes": list(names)}).encode(),
                            content_type="application/json")
    assert status == 200
    return got


def cut_put(conn: Conn, data: bytes, sent: int, version: str = "1.1") -> None:
    """A PUT of ``data`` whose client goes away after ``sent`` bytes of the body."""
    conn.sock.sendall(conn.head("PUT", f"/v1/blobs/{digest(data)}", len(data), version=version) + data[:sent])
    time.sleep(0.2)
    conn.sock.close()


def kept(blobs: DirBlobStore, data: bytes, within: float = 5.0) -> int:
    """The bytes of ``data`` the store keeps as a partial, once the cut upload ended."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = blobs.partials.held([digest(data)])
        if held and not leftovers(blobs):
            return held[digest(data)]
        time.sleep(0.02)
    return 0


def broken(served, size: int = 3 * MiB, sent: int = 2 * MiB) -> tuple[Conn, DirBlobStore, bytes, int]:
    """A PUT of ``size`` random bytes cut after ``sent``: a new connection, the store, the
    blob's bytes and how many of them were kept."""
    conn, blobs, _, server, token = served
    data = os.urandom(size)
    cut_put(conn, data, sent)
    return Conn(server.port, token), blobs, data, kept(blobs, data)


def resume(conn: Conn, data: bytes, offset: int, body: bytes | None = None, **fields: str) -> tuple[int, dict]:
    rest = data[offset:] if body is None else body
    fields.setdefault("content_range", f"bytes {offset}-{len(data) - 1}/{len(data)}")
    return conn.call("PUT", f"/v1/blobs/{digest(data)}", rest, **fields)


@pytest.mark.parametrize("version", ["1.1", "1.0"])  # 1.1 read raw, 1.0 through ASGI (rawbody Rule 1)
def test_a_cut_put_is_kept_and_resumed_where_it_stopped(served, version, caplog):
    caplog.set_level(logging.INFO)
    conn, blobs, runs, server, token = served
    data = os.urandom(3 * MiB + 12345)
    cut_put(conn, data, 2 * MiB, version)
    have = kept(blobs, data)
    assert MiB <= have <= 2 * MiB  # what reached the store before the cut
    gone = (logging.INFO, f"PUT /v1/blobs/{digest(data)}: the client went away before the body's end")
    deadline = time.monotonic() + 5  # logged by the request's handler, after the receiving thread kept the bytes
    while gone not in (said := [(r.levelno, r.getMessage()) for r in caplog.records]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone in said
    assert (logging.INFO, f"blob {digest(data)}: kept the {have} bytes of an upload that broke, to resume from") in said
    assert [m for level, m in said if level >= logging.ERROR] == []  # errors.py Rule 4: no traceback
    conn = Conn(server.port, token)
    assert missing(conn, digest(data), digest(b"other")) == {"missing": [digest(data), digest(b"other")],
                                                              "partial": {digest(data): have}}
    assert resume(conn, data, have) == (200, {"sha256": digest(data), "size": len(data)})
    assert b"".join(blobs.read(digest(data))) == data
    assert missing(conn, digest(data)) == {"missing": [], "partial": {}}
    assert list((blobs.root / "partials").iterdir()) == [] and leftovers(blobs) == []
    conn.close()


def test_a_resume_may_start_before_the_end_of_what_was_kept(served):
    conn, blobs, data, have = broken(served, 4 * MiB, 3 * MiB)
    assert have > 2 * MiB
    assert resume(conn, data, 2 * MiB)[0] == 200  # the kept bytes past it are cut off first
    assert b"".join(blobs.read(digest(data))) == data
    conn.close()


def test_a_resume_past_what_was_kept_is_refused_and_the_partial_stays(served):
    conn, blobs, data, have = broken(served)
    _, _, _, server, token = served
    status, got = resume(conn, data, have + 1)
    assert status == 409 and got["error"]["code"] == "partial_gone"
    assert f"holds {have} bytes of it; send it from byte {have}" in got["error"]["message"]
    assert blobs.partials.held([digest(data)]) == {digest(data): have}
    other = os.urandom(2 * MiB)
    status, got = resume(Conn(server.port, token), other, MiB)
    assert status == 409 and "holds none of it; send it from byte 0" in got["error"]["message"]
    assert resume(Conn(server.port, token), data, have)[0] == 200


def test_resumed_bytes_that_are_not_the_blobs_store_nothing_and_drop_the_partial(served):
    conn, blobs, data, have = broken(served)
    status, got = resume(conn, data, have, body=os.urandom(len(data) - have))
    assert status == 400 and got["error"]["code"] == "hash_mismatch"
    assert blobs.missing([digest(data)]) == [digest(data)]
    assert missing(conn, digest(data)) == {"missing": [digest(data)], "partial": {}}  # a spoilt partial is gone
    assert conn.call("PUT", f"/v1/blobs/{digest(data)}", data)[0] == 200  # whole, as before
    assert leftovers(blobs) == []


@pytest.mark.parametrize("content_range, length, says", [
    ("bytes 0-99/200", 100, "stops before the blob's end"),
    ("bytes 100-199/*", 100, "does not say the blob's size"),
    ("bytes 100-199/200", 99, "covers 100 bytes, but the body has 99"),
    ("bytes=100-", 100, "not a valid byte range"),
])
def test_a_content_range_a_resume_cannot_have_is_refused(served, content_range, length, says):
    conn, blobs, _, _, _ = served
    status, got = conn.call("PUT", f"/v1/blobs/{digest(b'x' * 200)}", b"x" * length, content_range=content_range)
    assert status == 400 and got["error"]["code"] == "bad_content_range" and says in got["error"]["message"]
    assert conn.call("PUT", f"/v1/blobs/{digest(b'y')}", b"y")[0] == 200  # the connection still serves


def test_a_refused_or_short_upload_keeps_nothing(served):
    conn, blobs, _, server, token = served
    data = os.urandom(3 * MiB)
    status, got = conn.call("PUT", f"/v1/blobs/{digest(b'claimed')}", data)
    assert status == 400 and got["error"]["code"] == "hash_mismatch"
    cut_put(Conn(server.port, token), data, MiB // 2)  # less than PARTIAL_MIN: cheap to send again
    test_rawbody.settled(blobs)
    assert blobs.partials.held([digest(b"claimed"), digest(data)]) == {}
    assert list((blobs.root / "partials").iterdir()) == []


def test_a_whole_put_drops_the_partial(served):
    conn, blobs, data, have = broken(served)
    assert have and conn.call("PUT", f"/v1/blobs/{digest(data)}", data)[0] == 200
    assert blobs.partials.held([digest(data)]) == {} and list((blobs.root / "partials").iterdir()) == []


def test_partials_outlive_a_restart_and_a_resume_goes_through_asgi(tmp_path):
    data = os.urandom(3 * MiB)
    kept_at = tmp_path / "asgi" / "blobs" / "partials"  # where through_asgi's control plane keeps them
    kept_at.mkdir(parents=True)
    (kept_at / digest(data)).write_bytes(data[:2 * MiB])
    (kept_at / "not-a-blob").write_bytes(b"x")
    status, got, blobs = test_rawbody.through_asgi(tmp_path, "PUT", f"/v1/blobs/{digest(data)}", data[2 * MiB:],
                                                   headers={"Content-Range": f"bytes {2 * MiB}-{len(data) - 1}/{len(data)}"})
    assert (status, got) == (200, {"sha256": digest(data), "size": len(data)})
    assert b"".join(blobs.read(digest(data))) == data
    assert list(kept_at.iterdir()) == []  # the stray file removed at start


def test_one_partial_is_resumed_by_one_upload_at_a_time(tmp_path):
    partials = Partials(tmp_path / "p", min_bytes=1)
    (tmp_path / "t1").write_bytes(b"abcdef")
    assert partials.keep(digest(b"abcdefgh"), str(tmp_path / "t1"), 6)
    fd = partials.take(digest(b"abcdefgh"), 4, str(tmp_path / "t2"))
    os.close(fd)
    assert (tmp_path / "t2").read_bytes() == b"abcd"
    with pytest.raises(PartialGone, match="holds none of it"):
        partials.take(digest(b"abcdefgh"), 4, str(tmp_path / "t3"))
    assert not (tmp_path / "t3").exists()


def test_collection_removes_partials_untouched_for_a_day(tmp_path):
    blobs = DirBlobStore(tmp_path / "blobs")
    old, young = os.urandom(2 * MiB), os.urandom(2 * MiB)
    for data in (old, young):
        (tmp_path / "t").write_bytes(data[:MiB + 1])
        assert blobs.partials.keep(digest(data), str(tmp_path / "t"), MiB + 1)
    long_ago = time.time() - PARTIAL_KEEP - 60
    os.utime(blobs.partials.directory + "/" + digest(old), (long_ago, long_ago))

    class NoReleases:
        def release_pointers(self):
            return {}, {}

        def release_numbers(self):
            return {}

    report = collect_blobs(NoReleases(), blobs, Retention(), dry_run=True)
    assert (report.partials_dropped, report.partial_bytes) == (1, MiB + 1)
    assert len(blobs.partials.held([digest(old), digest(young)])) == 2
    report = collect_blobs(NoReleases(), blobs, Retention())
    assert (report.partials_dropped, report.partial_bytes) == (1, MiB + 1)
    assert blobs.partials.held([digest(old), digest(young)]) == {digest(young): MiB + 1}
    assert sorted(os.listdir(blobs.partials.directory)) == [digest(young)]


def test_a_control_plane_stopping_mid_upload_keeps_what_came(tmp_path):
    """rawbody Rule 5: the upload stops at once, not when its body ends, and is kept."""
    import threading

    from owncdn.control.api import ApiServer, create_app
    from owncdn.control.store import Store, sqlite_url

    store = Store(sqlite_url(tmp_path))
    store.migrate()
    token = store.create_token("ci", {"deploy"})[1]
    blobs = DirBlobStore(tmp_path / "blobs")
    data = os.urandom(64 * MiB)
    server = ApiServer(create_app(store, blobs=blobs)).start()
    conn = Conn(server.port, token)
    sending = threading.Event()

    def send() -> None:  # the head and 3 MiB, then the rest slowly, as over a long way
        try:
            conn.sock.sendall(conn.head("PUT", f"/v1/blobs/{digest(data)}", len(data)) + data[:3 * MiB])
            sending.set()
            for at in range(3 * MiB, len(data), 64 << 10):
                conn.sock.sendall(data[at:at + (64 << 10)])
                time.sleep(0.01)
        except OSError:
            pass

    threading.Thread(target=send, daemon=True).start()
    assert sending.wait(10)
    time.sleep(0.3)
    server.stop()
    have = kept(blobs, data)  # while the client still sends
    conn.close()
    # stopped mid-body (the rest would take about 10 s at this pace), not read to its end
    assert 3 * MiB <= have < len(data) and blobs.missing([digest(data)]) == [digest(data)]
    store.close()
    restarted = DirBlobStore(tmp_path / "blobs")  # a new control plane finds it
    assert restarted.partials.held([digest(data)]) == {digest(data): have}


@pytest.mark.parametrize("version", ["1.1", "1.0"])  # read raw, and through ASGI (rawbody Rule 1)
def test_a_quiet_upload_is_given_up_for_the_client_that_asks_again(served, version):
    """inflight.py: the client noticed a break the control plane did not (the old
    connection stays open, silent); its next question takes over the bytes that came."""
    conn, blobs, _, server, token = served
    data = os.urandom(3 * MiB + 777)
    conn.sock.sendall(conn.head("PUT", f"/v1/blobs/{digest(data)}", len(data), version=version) + data[:2 * MiB])
    time.sleep(inflight.QUIET_SECONDS + 0.3)
    again = Conn(server.port, token)
    answer = missing(again, digest(data))
    have = answer["partial"].get(digest(data), 0)
    assert answer["missing"] == [digest(data)] and MiB <= have <= 2 * MiB
    assert conn.closed_by_server(5)  # the old upload was cut
    assert resume(again, data, have) == (200, {"sha256": digest(data), "size": len(data)})
    assert b"".join(blobs.read(digest(data))) == data
    assert missing(again, digest(data)) == {"missing": [], "partial": {}}
    assert leftovers(blobs) == [] and not server.app.state.inflight_uploads.uploads
    again.close()


def test_an_upload_still_receiving_is_not_given_up(served):
    """inflight.py Rule 3: a second push asking about a blob being uploaded leaves it be."""
    import threading

    conn, blobs, _, server, token = served
    data = os.urandom(4 * MiB)
    done = threading.Event()
    conn.sock.sendall(conn.head("PUT", f"/v1/blobs/{digest(data)}", len(data)) + data[:MiB])

    def trickle() -> None:  # the rest in small steps, never half a second apart
        for at in range(MiB, len(data), 32 << 10):
            conn.sock.sendall(data[at:at + (32 << 10)])
            time.sleep(0.02)
        done.set()

    threading.Thread(target=trickle, daemon=True).start()
    time.sleep(0.6)
    other = Conn(server.port, token)
    assert missing(other, digest(data)) == {"missing": [digest(data)], "partial": {}}
    assert done.wait(30)
    status, _, body = conn.answer()
    assert (status, json.loads(body)) == (200, {"sha256": digest(data), "size": len(data)})
    assert missing(other, digest(data)) == {"missing": [], "partial": {}}
    other.close()


def test_a_quiet_upload_too_short_to_keep_is_given_up_and_the_blob_goes_whole(served):
    conn, blobs, _, server, token = served
    data = os.urandom(2 * MiB)
    conn.sock.sendall(conn.head("PUT", f"/v1/blobs/{digest(data)}", len(data)) + data[:MiB // 2])
    time.sleep(inflight.QUIET_SECONDS + 0.3)
    again = Conn(server.port, token)
    assert missing(again, digest(data)) == {"missing": [digest(data)], "partial": {}}  # fewer than PARTIAL_MIN
    assert conn.closed_by_server(5)
    assert again.call("PUT", f"/v1/blobs/{digest(data)}", data)[0] == 200
    assert leftovers(blobs) == []
    again.close()
