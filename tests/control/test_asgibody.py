"""Uploads into a directory store that are not read raw (control/api/asgibody.py): HTTP/1.0
(nginx's default ``proxy_pass``), a chunked body, an ASGI transport. They go through the
same sink as a raw read: one pack per bundle, blobs offered before the flush, what a
refused or cut upload leaves."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from owncdn.control.api import asgibody
from owncdn.core.content.digest import digest
from tests.control import test_rawbody
from tests.control.test_rawbody import SITE, Conn, leftovers, record, release_body

served = test_rawbody.served  # the fixture, shared


@pytest.fixture
def fed(served, monkeypatch):
    """``served``, and the batches fed through ASGI: (bytes, thread name) each."""
    batches: list[tuple[int, str]] = []
    real = asgibody.AsgiBody._feed

    def counted(self, sink, batch, last):
        batches.append((len(batch), threading.current_thread().name))
        return real(self, sink, batch, last)

    monkeypatch.setattr(asgibody.AsgiBody, "_feed", counted)
    return (*served, batches)


def http10(conn: Conn, path: str, body: bytes) -> tuple[int, dict]:
    """One request in HTTP/1.0 (the server closes the connection after its answer)."""
    conn.sock.sendall(conn.head("POST", path, len(body), version="1.0") + body)
    head = b""
    while True:
        got = conn.sock.recv(1 << 16)
        if not got:
            break
        head += got
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(head.split(b"\r\n\r\n", 1)[1])


def packs(blobs) -> list[str]:
    return sorted(p.name for p in (blobs.root / "packs").glob("*.pack"))


def loose(blobs) -> list[str]:
    return [p.name for p in blobs.root.glob("[0-9a-f][0-9a-f]/*")]


def settled(blobs) -> None:
    deadline = time.monotonic() + 5
    while leftovers(blobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leftovers(blobs) == []


def test_an_http_1_0_bundle_lands_in_one_pack_fed_in_batches_from_worker_threads(fed):
    conn, blobs, runs, _, _, batches = fed
    datas = [os.urandom(1000 + i) for i in range(300)] + [os.urandom(3 << 20)]
    body = b"".join(map(record, datas))
    status, got = http10(conn, "/v1/blobs/bundle", body)
    assert status == 200 and len(got["stored"]) == len(datas) and got["bytes"] == sum(map(len, datas))
    assert runs == [] and blobs.missing([digest(d) for d in datas]) == []
    assert len(packs(blobs)) == 1 and loose(blobs) == []  # no file per blob
    assert sum(n for n, _ in batches) == len(body) and len(batches) >= 2
    assert all(n >= asgibody.FEED_BYTES for n, _ in batches[:-1])  # gathered into batches
    assert {name.split("_")[0] for _, name in batches} == {"asgi-feed"}  # the event loop writes no file
    assert [b"".join(blobs.read(digest(d))) == d for d in datas[:3] + datas[-1:]] == [True] * 4
    settled(blobs)


def test_a_chunked_release_bundle_is_checked_and_lands_in_a_pack(fed):
    conn, blobs, runs, server, token, batches = fed
    assert conn.call("POST", "/v1/envs/production/versions", json.dumps({"source": SITE}).encode(),
                     content_type="application/json")[0] < 300
    big = os.urandom(2 << 20)
    body = release_body({"index.html": b"<h1>hi</h1>", "big.bin": big})
    pieces = [body[i:i + 100_000] for i in range(0, len(body), 100_000)]
    conn.sock.sendall(conn.head("POST", "/v1/services/blog/releases/bundle?env=production", None,
                                Transfer_Encoding="chunked")
                      + b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces) + b"0\r\n\r\n")
    status, _, got = conn.answer()
    assert status == 201 and json.loads(got)["number"] == 1
    assert runs == [] and batches and len(packs(blobs)) == 1 and loose(blobs) == []
    assert blobs.missing([digest(big), digest(b"<h1>hi</h1>")]) == []
    refused = release_body({"x.bin": os.urandom(1 << 20)}, name="0" * 64)  # the manifest's hash: nothing stored
    status, got = http10(Conn(server.port, token), "/v1/services/blog/releases/bundle?env=production", refused)
    assert status == 400 and got["error"]["code"] == "hash_mismatch" and len(packs(blobs)) == 1
    settled(blobs)


def test_a_wrong_hash_is_refused_after_the_body_and_keeps_what_came_before(fed):
    conn, blobs, _, _, _, batches = fed
    good, bad, after = os.urandom(200_000), os.urandom(300_000), os.urandom(3 << 20)
    body = record(good) + record(bad, digest(b"something else")) + record(after)
    status, got = http10(conn, "/v1/blobs/bundle", body)  # answered once the whole body was read
    assert status == 400 and got["error"]["code"] == "hash_mismatch"
    assert "the 1 blob(s) before it were stored" in got["error"]["message"]
    assert blobs.missing([digest(good), digest(bad), digest(after)]) == [digest(bad), digest(after)]
    assert sum(n for n, _ in batches) < len(body)  # what came after the refusal was dropped, not fed
    settled(blobs)


def test_a_client_that_vanishes_mid_body_through_asgi_leaves_only_whole_blobs(fed):
    conn, blobs, _, _, _, batches = fed
    whole, cut = os.urandom(1_500_000), os.urandom(3 << 20)
    body = record(whole) + record(cut)
    conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", len(body), version="1.0") + body[:len(body) // 2])
    deadline = time.monotonic() + 5
    while not batches and time.monotonic() < deadline:
        time.sleep(0.01)
    conn.sock.close()
    deadline = time.monotonic() + 5
    while blobs.missing([digest(whole)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert blobs.missing([digest(whole), digest(cut)]) == [digest(cut)]
    settled(blobs)


async def test_a_push_through_nginx_in_front_of_the_control_plane_lands_in_packs(fed, tmp_path):
    """nginx's ``proxy_pass`` speaks HTTP/1.0 to the control plane by default, so every
    upload of a push behind it goes through ASGI; the push ends as any other."""
    import asyncio

    from owncdn.client.push import push_site
    from owncdn.client.pushapi import PushApi
    from owncdn.testing.nginx import NginxOrigin

    conn, blobs, runs, server, token, batches = fed
    assert conn.call("POST", "/v1/envs/production/versions", json.dumps({"source": SITE}).encode(),
                     content_type="application/json")[0] < 300
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    files = {"index.html": b"<h1>hi</h1>", "assets/big.bin": os.urandom(3 << 20)}
    files.update({f"assets/{i}.css": os.urandom(5000 + i) for i in range(200)})
    for path, data in files.items():
        (site / path).write_bytes(data)
    proxy = f"location /v1/ {{ proxy_pass http://127.0.0.1:{server.port}; client_max_body_size 0; }}"
    async with NginxOrigin(tmp_path / "empty", extra_config=proxy) as nginx:
        api = PushApi(nginx.url, token)
        try:
            result = await asyncio.to_thread(push_site, api, site, service="blog")
        finally:
            api.close()
        assert {r.path for r in nginx.requests() if r.method == "POST"} >= {"/v1/blobs/missing"}
    assert result.release["number"] == 1 and result.blobs_uploaded == len(files)
    assert runs == [] and batches  # through ASGI, fed to the sink
    assert blobs.missing([digest(d) for d in files.values()]) == [] and packs(blobs)
    assert loose(blobs) == [digest(files["assets/big.bin"])]  # a large file goes alone, in a PUT
    settled(blobs)


@pytest.mark.parametrize("how", ["raw", "http/1.0", "chunked"])
def test_a_bundle_upload_reserves_the_disk_space_of_the_rest_of_its_body(fed, monkeypatch, how):
    """uploadsink Rule 6 (packs Rule 7): a body of known length, read raw or through ASGI;
    a chunked one has none to reserve."""
    from tests.test_packs_reserve import allocated, spy_reserve

    conn, blobs, runs, _, _, _ = fed
    asked = spy_reserve(monkeypatch)
    datas = [os.urandom(300_000), os.urandom(2 << 20)]
    body = b"".join(map(record, datas))
    if how == "raw":
        status, got = conn.call("POST", "/v1/blobs/bundle", body)
    elif how == "http/1.0":
        status, got = http10(conn, "/v1/blobs/bundle", body)
    else:
        conn.sock.sendall(conn.head("POST", "/v1/blobs/bundle", None, Transfer_Encoding="chunked")
                          + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        status, _, data = conn.answer()
        got = json.loads(data)
    assert status == 200 and len(got["stored"]) == 2 and runs == (["BundleSink"] if how == "raw" else [])
    assert asked == [len(body) if how != "chunked" else 0]
    (pack,) = (blobs.root / "packs").glob("*.pack")
    assert os.path.getsize(pack) == len(body) and allocated(pack) < len(body) + (1 << 20)
    settled(blobs)
