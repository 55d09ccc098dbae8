"""A large file's upload that breaks is resumed where it stopped (push Rule 15, pushapi
Rule 6, api/blobs.py Rule 7): through a proxy that cuts the connection mid-body, with
``PushApi`` and ``Client``, in the same push and in the next one."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from owncdn.client import ApiError, Client
from owncdn.client.push import push_site
from owncdn.client.pushapi import PushApi
from owncdn.core.content.digest import digest
from tests.client import test_push
from tests.client.test_push import site

api = test_push.api  # the fixture, shared

MiB = 1 << 20


class CuttingProxy:
    """TCP on loopback to ``port``; a connection that has carried ``after`` bytes
    towards the control plane is closed both ways, ``times`` times. With ``pace``, it
    waits that many seconds after each piece (up to 64 KiB) it carries that way;
    ``carried``: the bytes carried that way on all connections. With ``half``, a cut
    closes the client's side only: the control plane's stays open and silent, as
    after a break only the client noticed."""

    def __init__(self, port: int, after: int, times: int = 1, pace: float = 0.0, half: bool = False) -> None:
        self.port, self.after, self.times, self.pace, self.half = port, after, times, pace, half
        self.cuts = self.carried = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        carried = 0
        try:
            while data := source.recv(1 << 16):
                if counted:
                    with self.lock:
                        cut = self.cuts < self.times and carried + len(data) > self.after
                        if cut:
                            self.cuts += 1
                    if cut:
                        sink.sendall(data[:self.after - carried])
                        if self.half:
                            source.shutdown(socket.SHUT_RDWR)
                            return  # the control plane's side: left open (its other pump ends it)
                        break
                    carried += len(data)
                    self.carried += len(data)
                sink.sendall(data)
                if counted and self.pace:
                    time.sleep(self.pace)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr("owncdn.client.push.RESUME_PAUSE", 0.2)


def push_through(api, root, **cutting):
    """``push_site`` of ``root`` with ``PushApi`` through a ``CuttingProxy(**cutting)``:
    ``(result, proxy, client)``."""
    proxy = CuttingProxy(int(api.base_url.rsplit(":", 1)[1]), **cutting)
    try:
        with PushApi(proxy.url, api.token) as client:
            return push_site(client, root, service="blog"), proxy, client
    finally:
        proxy.close()


def big_site(root, size: int):
    site(root, index__html="home")
    data = os.urandom(size)
    (root / "release.bin").write_bytes(data)
    return root, data


@pytest.mark.parametrize("kind", ["PushApi", "Client"])
def test_a_large_upload_that_breaks_is_resumed_in_the_same_push(api, tmp_path, fast_retries, kind):
    root, data = big_site(tmp_path / "s", 6 * MiB)
    proxy = CuttingProxy(int(api.base_url.rsplit(":", 1)[1]), after=4 * MiB)
    client = PushApi(proxy.url, api.token) if kind == "PushApi" else Client(proxy.url, api.token)
    seen: list[int] = []
    try:
        result = push_site(client, root, service="blog", progress=seen.append)
    finally:
        client.close()
        proxy.close()
    assert proxy.cuts == 1 and result.release["number"] == 1
    assert b"".join(api.blobs.read(digest(data))) == data
    # the kept bytes were not sent again: under 6 MiB sent in the resume, about 4 in the try that broke
    assert 6 * MiB < result.bytes_uploaded < 9 * MiB and MiB <= result.bytes_resumed <= 4 * MiB
    assert sum(seen) == 6 * MiB + len("home")  # progress counts each byte once
    assert api.blobs.partials.held([digest(data)]) == {}


def test_a_break_only_the_client_noticed_is_resumed_in_the_same_push(api, tmp_path, monkeypatch):
    """api/inflight.py: the control plane's side of the cut upload stays open and silent;
    the push's question after its pause (longer than ``QUIET_SECONDS``) takes it over."""
    from owncdn.control.api import inflight

    monkeypatch.setattr("owncdn.client.push.RESUME_PAUSE", inflight.QUIET_SECONDS + 0.3)
    root, data = big_site(tmp_path / "s", 6 * MiB)
    result, proxy, _ = push_through(api, root, after=4 * MiB, half=True)
    assert proxy.cuts == 1 and result.release["number"] == 1
    assert b"".join(api.blobs.read(digest(data))) == data
    assert MiB <= result.bytes_resumed <= 4 * MiB and result.bytes_uploaded < 9 * MiB


def test_a_push_that_gave_up_is_resumed_by_the_next(api, tmp_path, fast_retries, monkeypatch):
    root, data = big_site(tmp_path / "s", 6 * MiB)
    monkeypatch.setattr("owncdn.client.push.RESUME_TRIES", 0)
    proxy = CuttingProxy(int(api.base_url.rsplit(":", 1)[1]), after=4 * MiB)
    with PushApi(proxy.url, api.token) as client, pytest.raises(ApiError) as broke:
        push_site(client, root, service="blog")
    proxy.close()
    assert broke.value.status == 0 and api.releases("production", "blog") == []
    kept = wait_for_partial(api, digest(data))
    assert MiB <= kept < 4 * MiB + 1
    with PushApi(api.base_url, api.token) as client:
        again = push_site(client, root, service="blog")
    small = len("home") if again.blobs_uploaded == 2 else 0  # index.html may have gone before the break
    assert again.release["number"] == 1 and again.bytes_uploaded == len(data) - kept + small
    assert again.bytes_resumed == kept
    assert b"".join(api.blobs.read(digest(data))) == data


def test_a_resume_the_control_plane_cannot_take_sends_the_whole_blob(api, tmp_path, fast_retries):
    root, data = big_site(tmp_path / "s", 3 * MiB)
    with PushApi(api.base_url, api.token) as client:
        client.missing_blobs([digest(data)])
        client.partial[digest(data)] = 2 * MiB  # a stale answer: the control plane keeps nothing
        result = push_site(client, root, service="blog")
    assert result.release["number"] == 1 and result.bytes_uploaded == len(data) + len("home")
    assert result.bytes_resumed == 0
    assert b"".join(api.blobs.read(digest(data))) == data


def wait_for_partial(api, sha: str, within: float = 5.0) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = api.blobs.partials.held([sha])
        if held:
            return held[sha]
        time.sleep(0.02)
    raise AssertionError(f"no partial of {sha} was kept")


def test_a_resumed_upload_that_breaks_again_is_resumed_again(api, tmp_path, fast_retries):
    root, data = big_site(tmp_path / "s", 10 * MiB)
    result, proxy, client = push_through(api, root, after=4 * MiB, times=2)
    assert proxy.cuts == 2 and result.release["number"] == 1
    # the first resume (from about 4 MiB) broke too; the second sent what the two breaks left (after about 8)
    [kept] = client.resumed
    assert 4 * MiB < kept < 9 * MiB and result.bytes_resumed == kept
    assert b"".join(api.blobs.read(digest(data))) == data


def test_a_push_the_hash_cache_answers_for_still_resumes(api, tmp_path, fast_retries, monkeypatch):
    """push Rules 7 and 15: the cache knew every file, so the push created the release first;
    the 409 named the large blob, which was asked about before it was sent."""
    from owncdn.client.hashcache import HashCache

    monkeypatch.setattr("owncdn.client.hashcache.RACY_NS", 0)
    root, data = big_site(tmp_path / "s", 6 * MiB)
    cache = tmp_path / "cache"
    monkeypatch.setattr("owncdn.client.push.RESUME_TRIES", 0)
    proxy = CuttingProxy(int(api.base_url.rsplit(":", 1)[1]), after=4 * MiB)
    with PushApi(proxy.url, api.token) as client, pytest.raises(ApiError):
        push_site(client, root, service="blog", cache=HashCache.for_root(root, cache))
    proxy.close()
    kept = wait_for_partial(api, digest(data))
    with PushApi(api.base_url, api.token) as client:
        again = push_site(client, root, service="blog", cache=HashCache.for_root(root, cache))
    assert again.release["number"] == 1 and again.bytes_resumed == kept
    assert b"".join(api.blobs.read(digest(data))) == data
