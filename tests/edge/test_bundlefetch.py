"""A bundle received in a worker thread (edge/bundlefetch.py): against a scripted raw
server on loopback, each scenario says how the answer is framed and cut, and what was
kept, reported and reused."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest as blob_name
from owncdn.edge.bundlefetch import BlobConnections, BundleFetch
from owncdn.edge.releases import ReleaseStore
from owncdn.edge.upstream import (
    OriginAddress, OriginConnectError, OriginProtocolError, OriginTimeout, Timeouts, request_head,
)

BLOBS = [b"<h1>one</h1>", b"body{}" * 50, bytes(range(256)) * 40, b""]


def sha(data: bytes) -> str:
    return blob_name(data)  # BLAKE3, <hex>-b3


def bundle(blobs: list[bytes], corrupt: bytes | None = None) -> bytes:
    return b"".join(header(sha(b), len(b)) + (b"X" + b[1:] if b == corrupt else b) for b in blobs)


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class Script:
    """A raw HTTP/1.1 server: each request on any connection gets the next answer, sent
    in pieces of ``step`` bytes, then the connection is kept for the next (``then``
    "keep"), closed ("close") or left open and silent ("stall"); an answer ``None``
    closes the connection unanswered."""

    def __init__(self, tls=None) -> None:
        self.tls = tls  # a server-side ssl.SSLContext: the connections are TLS
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.answers: list[tuple[bytes | None, int, str]] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> OriginAddress:
        scheme = "https" if self.tls else "http"
        return OriginAddress.from_url(f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}", tls_verify=False)

    def answer(self, data: bytes | None, step: int = 1 << 20, then: str = "keep") -> None:
        self.answers.append((data, step, then))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._answer_all(conn)
        except OSError:  # closed by the test's end
            pass

    def _answer_all(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                return
            self.open.append(conn)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            head, _, data = data.partition(b"\r\n\r\n")
            fields = head.lower()
            length = int(fields.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in fields else 0
            while len(data) < length:
                data += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + data[:length])
            data = data[length:]
            answer, step, then = self.answers.pop(0)
            if answer is None:
                conn.close()
                return
            for i in range(0, len(answer), step):
                conn.sendall(answer[i:i + step])
                if step < 64:
                    time.sleep(0.0005)  # separate reads on the other side
            if then == "close":
                conn.close()
            if then != "keep":
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def server():
    s = Script()
    yield s
    s.close()


def fetch(server: Script, store: ReleaseStore, blobs: list[bytes], conns: BlobConnections | None = None,
          timeouts: Timeouts = Timeouts(connect=2, first_byte=2, idle=2)):
    conns = conns or BlobConnections(server.address, timeouts)
    body = b'{"hashes":[]}'
    request = request_head("POST", "/v1/blobs/fetch", [("Host", "cp"), ("Content-Length", str(len(body)))]) + body
    job = BundleFetch(conns, request, {sha(b): len(b) for b in blobs}, store)
    return job, job.run(), conns


def head(extra: str = "Transfer-Encoding: chunked") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/x-owncdn-bundle\r\n{extra}\r\n\r\n".encode()


def test_a_chunked_bundle_in_small_pieces_is_kept_and_the_connection_reused(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    server.answer(b"HTTP/1.1 100 Continue\r\n\r\n" + head() + chunked(bundle(BLOBS), 7), step=37)
    server.answer(head() + chunked(bundle([b"again"]), 1000))
    job, outcome, conns = fetch(server, store, BLOBS)
    assert outcome.error is None and outcome.status == 200 and not job.missing
    assert outcome.results == [(sha(b), True) for b in BLOBS]
    assert outcome.received == sum(map(len, BLOBS)) == store.fetched_bytes and store.fetched_blobs == len(BLOBS)
    assert all(store.read_blob(sha(b)) == b for b in BLOBS)
    assert list(store.partial.iterdir()) == [] and b"POST /v1/blobs/fetch HTTP/1.1" in server.requests[0]
    assert packed_files(store) == ["1.idx", "1.pack"]  # one pack for the bundle, no file per blob
    assert (store.packs.dir / "1.pack").read_bytes() == b"".join(BLOBS)  # back to back, as they came
    _, second, _ = fetch(server, store, [b"again"], conns)
    assert second.error is None and server.connections == 1  # kept alive
    assert packed_files(store) == ["1.idx", "1.pack", "2.idx", "2.pack"]


def packed_files(store: ReleaseStore) -> list[str]:
    return sorted(p.name for p in store.packs.dir.iterdir())


@pytest.mark.parametrize("framing", ["content-length", "connection end"])
def test_other_framings(server, tmp_path, framing):
    store = ReleaseStore(tmp_path / "push")
    body = bundle(BLOBS)
    if framing == "content-length":
        server.answer(head(f"Content-Length: {len(body)}") + body, step=100)
    else:
        server.answer(head("Connection: close") + body, step=100, then="close")
    _, outcome, conns = fetch(server, store, BLOBS)
    assert outcome.error is None and all(store.has_blob(sha(b)) for b in BLOBS)
    assert len(conns.idle) == (1 if framing == "content-length" else 0)


def test_a_wrong_blob_is_reported_and_not_kept_the_others_are(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    server.answer(head() + chunked(bundle(BLOBS, corrupt=BLOBS[1]), 100))
    _, outcome, _ = fetch(server, store, BLOBS)
    assert outcome.error is None and (sha(BLOBS[1]), False) in outcome.results
    assert not store.has_blob(sha(BLOBS[1])) and store.has_blob(sha(BLOBS[2]))
    assert list(store.partial.iterdir()) == []
    assert (store.packs.dir / "1.pack").read_bytes() == b"".join(b for b in BLOBS if b != BLOBS[1])  # cut off again


def test_sha256_and_blake3_names_in_one_bundle_are_each_checked_with_their_hash(server, tmp_path):
    """Blobs of a release pushed before BLAKE3 (SHA-256 names) and newer ones in one
    bundle: a wrong body under either kind of name is refused, the rest kept."""
    store = ReleaseStore(tmp_path / "push")
    old = lambda data: blob_name(data, "sha256")  # noqa: E731
    sent = [(old(b"old"), b"old"), (old(b"bad old"), b"bad 0ld"), (sha(b"new"), b"new"), (sha(b"bad new"), b"bad n3w")]
    server.answer(head() + chunked(b"".join(header(name, len(data)) + data for name, data in sent), 9))
    conns = BlobConnections(server.address, Timeouts(connect=2, first_byte=2, idle=2))
    body = b'{"hashes":[]}'
    request = request_head("POST", "/v1/blobs/fetch", [("Host", "cp"), ("Content-Length", str(len(body)))]) + body
    outcome = BundleFetch(conns, request, {name: len(data) for name, data in sent}, store).run()
    assert outcome.error is None
    assert outcome.results == [(old(b"old"), True), (old(b"bad old"), False), (sha(b"new"), True), (sha(b"bad new"), False)]
    assert store.read_blob(old(b"old")) == b"old" and store.read_blob(sha(b"new")) == b"new"
    assert not store.has_blob(old(b"bad old")) and not store.has_blob(sha(b"bad new"))


def test_a_blob_the_store_holds_already_is_read_past_and_not_written_again(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    held = store.put_blob(BLOBS[0])
    before = store.blob_path(held).stat().st_ino
    server.answer(head() + chunked(bundle(BLOBS), 100))
    _, outcome, _ = fetch(server, store, BLOBS)
    assert outcome.error is None and all(store.has_blob(sha(b)) for b in BLOBS)
    assert store.blob_path(held).stat().st_ino == before  # the held file was not replaced
    assert list(store.partial.iterdir()) == []


def test_a_blob_not_asked_for_ends_the_fetch(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    server.answer(head() + chunked(bundle([BLOBS[0], b"surprise"]), 100))
    _, outcome, conns = fetch(server, store, [BLOBS[0]])
    assert isinstance(outcome.error, OriginProtocolError) and "not asked for" in str(outcome.error)
    assert store.has_blob(sha(BLOBS[0])) and not conns.idle


def test_a_bundle_cut_off_keeps_the_blobs_before_the_cut(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    body = chunked(bundle(BLOBS), 50)
    server.answer(head() + body[:len(body) // 2], then="close")
    _, outcome, _ = fetch(server, store, BLOBS)
    assert isinstance(outcome.error, OriginProtocolError)
    assert store.has_blob(sha(BLOBS[0])) and not store.has_blob(sha(BLOBS[2]))
    assert list(store.partial.iterdir()) == []
    kept = [b for b in BLOBS if store.has_blob(sha(b))]
    assert (store.packs.dir / "1.pack").read_bytes() == b"".join(kept)  # the blob cut midway is cut off the pack
    assert ReleaseStore(tmp_path / "push").held.keys() == {sha(b) for b in kept}  # and a restart finds them


def test_without_a_boot_id_the_bundle_is_committed_once_at_its_end(server, tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id=None)
    commits, real = [], store.end_pack

    def end_pack(writer):
        assert not any(store.has_blob(sha(b)) for b in BLOBS)  # held only once committed
        commits.append(writer.kept)
        return real(writer)

    store.end_pack = end_pack
    server.answer(head() + chunked(bundle(BLOBS), 100))
    _, outcome, _ = fetch(server, store, BLOBS)
    assert outcome.error is None and commits == [len(BLOBS)] and all(store.has_blob(sha(b)) for b in BLOBS)


def test_an_error_status_returns_its_body(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    body = b'{"error": {"code": "missing_blobs", "problems": ["abc"]}}'
    server.answer(f"HTTP/1.1 404 Not Found\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    _, outcome, _ = fetch(server, store, BLOBS)
    assert (outcome.status, outcome.refusal, outcome.error) == (404, body, None)


def test_a_kept_connection_closed_by_the_server_is_replaced_once(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    server.answer(head() + chunked(bundle([BLOBS[0]]), 100))
    server.answer(None)  # the server closed the kept connection meanwhile
    server.answer(head() + chunked(bundle([BLOBS[1]]), 100))
    _, first, conns = fetch(server, store, [BLOBS[0]])
    _, second, _ = fetch(server, store, [BLOBS[1]], conns)
    assert first.error is None and second.error is None and server.connections == 2
    assert store.has_blob(sha(BLOBS[1]))


def test_abort_ends_a_waiting_fetch_and_keeps_what_came(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    body = chunked(bundle(BLOBS[:2]), 1000)
    server.answer(head() + body[:-5], then="stall")  # the last chunk never comes
    timeouts = Timeouts(connect=2, first_byte=60, idle=60)
    conns = BlobConnections(server.address, timeouts)
    request = request_head("POST", "/v1/blobs/fetch", [("Host", "cp"), ("Content-Length", "2")]) + b"{}"
    job = BundleFetch(conns, request, {sha(b): len(b) for b in BLOBS}, store)
    done: list = []
    thread = threading.Thread(target=lambda: done.append(job.run()))
    thread.start()
    for _ in range(500):
        if store.has_blob(sha(BLOBS[1])):
            break
        time.sleep(0.01)
    job.abort()
    thread.join(20)  # ended by the abort, not by the 60 s idle timeout
    assert not thread.is_alive() and isinstance(done[0].error, OriginConnectError)
    assert store.has_blob(sha(BLOBS[0])) and store.has_blob(sha(BLOBS[1])) and job.missing == {sha(BLOBS[2]), sha(BLOBS[3])}


def test_a_silent_server_times_out(server, tmp_path):
    store = ReleaseStore(tmp_path / "push")
    server.answer(head(), then="stall")
    _, outcome, _ = fetch(server, store, BLOBS, timeouts=Timeouts(connect=2, first_byte=2, idle=0.2))
    assert isinstance(outcome.error, OriginTimeout)


def test_a_refused_connection_is_a_connect_error(tmp_path):
    free = socket.create_server(("127.0.0.1", 0))
    address = OriginAddress.from_url(f"http://127.0.0.1:{free.getsockname()[1]}")
    free.close()
    job = BundleFetch(BlobConnections(address, Timeouts(connect=1)), b"", {}, ReleaseStore(tmp_path / "push"))
    assert isinstance(job.run().error, OriginConnectError)


def test_over_tls_a_bundle_is_kept_and_abort_still_ends_the_fetch(tmp_path):
    import ssl

    from owncdn.testing.certs import TestCA

    cert, key = TestCA().issue(["127.0.0.1"]).write(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = Script(tls=ctx)
    try:
        store = ReleaseStore(tmp_path / "push")
        server.answer(head() + chunked(bundle(BLOBS), 3000))
        server.answer(head() + chunked(bundle([b"later"]), 1000)[:-5], then="stall")  # never ends
        job, outcome, conns = fetch(server, store, BLOBS)
        assert outcome.error is None and all(store.has_blob(sha(b)) for b in BLOBS)
        job = BundleFetch(conns, job.request, {sha(b"later"): 5}, store)
        done: list = []
        thread = threading.Thread(target=lambda: done.append(job.run()))
        thread.start()
        time.sleep(0.2)
        job.abort()
        thread.join(5)
        assert not thread.is_alive() and isinstance(done[0].error, OriginConnectError)
        assert store.has_blob(sha(b"later"))  # it came before the stop: kept
    finally:
        server.close()


def test_with_every_blob_kept_on_complete_comes_before_the_body_ends(server, tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-1")  # blobs named at once (Rule 8)
    body = chunked(bundle(BLOBS), 1000)
    server.answer(head() + body[:-5], then="stall")  # the last chunk never comes
    conns = BlobConnections(server.address, Timeouts(connect=2, first_byte=10, idle=10))
    request = request_head("POST", "/v1/blobs/fetch", [("Host", "cp"), ("Content-Length", "2")]) + b"{}"
    complete = threading.Event()
    job = BundleFetch(conns, request, {sha(b): len(b) for b in BLOBS}, store, on_complete=complete.set)
    done: list = []
    thread = threading.Thread(target=lambda: done.append(job.run()))
    thread.start()
    assert complete.wait(5) and not done  # run() still reads the body's end
    assert all(store.has_blob(sha(b)) for b in BLOBS) and not job.missing
    job.abort()
    thread.join(5)
    assert [ok for _, ok in done[0].results] == [True] * len(BLOBS)


def test_on_complete_is_not_called_when_a_blob_hashed_wrong_or_one_is_lacking(server, tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-1")
    conns = BlobConnections(server.address, Timeouts(connect=2, first_byte=2, idle=2))
    request = request_head("POST", "/v1/blobs/fetch", [("Host", "cp"), ("Content-Length", "2")]) + b"{}"
    calls = []
    server.answer(head() + chunked(bundle(BLOBS[:2], corrupt=BLOBS[1]), 1000))
    outcome = BundleFetch(conns, request, {sha(b): len(b) for b in BLOBS[:2]}, store,
                          on_complete=lambda: calls.append("wrong")).run()
    server.answer(head() + chunked(bundle(BLOBS[2:3]), 1000))
    lacking = BundleFetch(conns, request, {sha(b): len(b) for b in BLOBS[2:]}, store,
                          on_complete=lambda: calls.append("lacking")).run()
    assert outcome.error is None and lacking.error is None and calls == []
