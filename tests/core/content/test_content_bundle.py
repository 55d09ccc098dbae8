"""Bundles: records of blobs in one body, read by a sans-IO reader fed in any pieces."""

import hashlib

import pytest
from hypothesis import given, strategies as st

from owncdn.core.content.bundle import BlobData, BlobEnd, BlobStart, BundleError, BundleReader, header
from owncdn.core.content.digest import digest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle(*blobs: bytes) -> bytes:
    return b"".join(header(sha(b), len(b)) + b for b in blobs)


def test_blake3_and_sha256_names_side_by_side():
    data = header(digest(b"new"), 3) + b"new" + header(sha(b"old"), 3) + b"old"
    assert read(data, 5) == [(digest(b"new"), b"new"), (sha(b"old"), b"old")]


def read(data: bytes, piece: int, views: bool = False) -> list[tuple[str, bytes]]:
    reader, out, current = BundleReader(views=views), [], None
    for i in range(0, len(data), piece):
        for event in reader.feed(data[i:i + piece]):
            if isinstance(event, BlobStart):
                current = (event.sha256, bytearray())
            elif isinstance(event, BlobData):
                assert isinstance(event.data, memoryview if views else bytes)
                current[1].extend(event.data)
            else:
                assert isinstance(event, BlobEnd) and event.sha256 == current[0]
                out.append((current[0], bytes(current[1])))
    reader.close()
    return out


@pytest.mark.parametrize("views", [False, True])
@pytest.mark.parametrize("piece", [1, 2, 7, 64, 65, 66, 85, 1000, 1 << 20])
def test_any_piece_size(piece, views):
    blobs = [b"hello", b"", b"x" * 5000, b"\n" * 3]
    assert read(bundle(*blobs), piece, views) == [(sha(b), b) for b in blobs]


def test_views_are_read_only_slices_of_what_was_fed():
    fed = bundle(b"hello world")
    [_, data, _] = BundleReader(views=True).feed(fed)
    assert data.data.obj is fed and data.data.readonly and data == BlobData(b"hello world")


def test_an_empty_bundle():
    assert read(b"", 10) == []


@given(st.lists(st.binary(max_size=300), max_size=6), st.integers(1, 400))
def test_round_trip(blobs, piece):
    assert read(bundle(*blobs), piece) == [(sha(b), b) for b in blobs]


@pytest.mark.parametrize("data, why", [
    (b"A" * 64 + b" 1\nx", "bad record header at byte 0"),
    (b"a" * 64 + b" 01\nx", "bad record header"),
    (b"a" * 64 + b" -1\n", "bad record header"),
    (b"a" * 64 + b"  1\nx", "bad record header"),
    (b"a" * 64 + b" 1\r\nx", "bad record header"),
    (b"a" * 64 + b"-b3 " + b"9" * 20 + b"\n", "within 88 bytes"),
    (b"a" * 64 + b" " + b"9" * 20 + b"\n", "bad record header"),
    (b"a" * 64 + b"-b3 " + b"9" * 19 + b"\n", None),  # the largest header is fine (then cut short)
    (b"a" * 64 + b"-b2 1\nx", "bad record header"),
    (b"a" * 64 + b":b3 1\nx", "bad record header"),
    (b"a" * 200, "within 88 bytes"),
    (b"hello\n", "bad record header"),
    (bundle(b"ok") + b"garbage\n", f"bad record header at byte {len(bundle(b'ok'))}"),
])
def test_bad_headers(data, why):
    with pytest.raises(BundleError, match=why or "ends inside a record"):
        read(data, 3)


@pytest.mark.parametrize("data", [b"a" * 64 + b" 5\nabc", b"a" * 64, bundle(b"x")[:-1]])
def test_a_bundle_cut_short(data):
    with pytest.raises(BundleError, match="ends inside a record"):
        read(data, 1000)
