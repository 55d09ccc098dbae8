"""Blob names: which hash a name says, and checking bytes against it (table rows)."""

import hashlib
from urllib.parse import quote

import blake3
import pytest

from owncdn.core.content.digest import (ALGORITHMS, NEW, algorithm, all_blake3_names, digest, hasher, is_blob_name,
                                        name_of, new_hasher, sha256_hex)

HEX = "0123456789abcdef" * 4
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262-b3"


@pytest.mark.parametrize("name, algo", [
    (HEX, "sha256"),
    (HEX + "-b3", "blake3"),
    (EMPTY_SHA256, "sha256"),
    (EMPTY_BLAKE3, "blake3"),
    (HEX.upper(), None),                      # lowercase only
    (HEX[:63], None),
    (HEX + "0", None),
    (HEX[:63] + "-b3", None),
    (HEX + "-B3", None),
    (HEX + "-b2", None),
    (HEX + "-b3-b3", None),
    ("blake3:" + HEX, None),                  # not the OCI form (digest.py rule 2)
    ("-b3", None),
    ("", None),
    (HEX + "\n", None),
    ("gc." + HEX, None),                      # the control plane's GC names are not blob names
    (None, None),
    (12, None),
    (HEX.encode(), None),
])
def test_algorithm_of_a_name(name, algo):
    assert algorithm(name) == algo
    assert is_blob_name(name) is (algo is not None)


@pytest.mark.parametrize("data, algo, name", [
    (b"", "sha256", EMPTY_SHA256),
    (b"", "blake3", EMPTY_BLAKE3),
    (b"abc", "sha256", hashlib.sha256(b"abc").hexdigest()),
    (b"abc", "blake3", blake3.blake3(b"abc").hexdigest() + "-b3"),
    (memoryview(b"abc"), "blake3", blake3.blake3(b"abc").hexdigest() + "-b3"),
])
def test_digest(data, algo, name):
    assert digest(data, algo) == name
    assert algorithm(name) == algo


def test_new_content_is_named_by_blake3():
    assert NEW == "blake3" and digest(b"x") == digest(b"x", "blake3") and algorithm(digest(b"x")) == "blake3"


@pytest.mark.parametrize("name, body, ok", [
    (EMPTY_SHA256, b"", True),
    (EMPTY_BLAKE3, b"", True),
    (digest(b"hello"), b"hello", True),
    (digest(b"hello", "sha256"), b"hello", True),
    (digest(b"hello"), b"hellO", False),
    (digest(b"hello", "sha256"), b"hellO", False),
    (digest(b"hello")[:64], b"hello", False),  # BLAKE3 hex read as SHA-256: another hash
])
def test_a_body_is_checked_with_the_hash_its_name_says(name, body, ok):
    h = hasher(name)
    h.update(body[:2])
    h.update(body[2:])  # in pieces, as blobs arrive
    assert (name_of(h) == name) is ok


@pytest.mark.parametrize("bad", ["", "A" * 64, "blake3:" + HEX, HEX + "-b2", "x" * 500])
def test_hasher_refuses_what_is_not_a_name(bad):
    with pytest.raises(ValueError, match="expected 64 lowercase hex digits"):
        hasher(bad)


def test_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown blob hash 'md5'"):
        new_hasher("md5")


def test_many_threads_give_the_same_name():
    data = bytes(range(256)) * 8192  # 2 MiB: large enough for BLAKE3 to split it
    h = new_hasher("blake3", max_threads=blake3.blake3.AUTO)
    h.update(data)
    assert name_of(h) == digest(data)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_names_need_no_escaping(algo):
    """Rule 2: file names, S3 keys and URL path segments as they are; the first
    characters are hex digits (directory shards, ETags)."""
    name = digest(b"some file", algo)
    assert quote(name, safe="") == name
    assert set(name) <= set("0123456789abcdef-b") and "/" not in name
    assert all(c in "0123456789abcdef" for c in name[:64])


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 4096, bytes(5 << 20), memoryview(b"view")])
@pytest.mark.parametrize("hashlib_loaded", [True, False])
def test_sha256_hex_is_the_sha256_with_or_without_openssl(data, hashlib_loaded, monkeypatch):
    """Rule 5: manifest ids; `owncdn push` hashes small inputs without loading OpenSSL's."""
    import sys

    expected = hashlib.sha256(data).hexdigest()
    if not hashlib_loaded:
        monkeypatch.delitem(sys.modules, "hashlib")
    assert sha256_hex(data) == expected


B3 = "0123456789abcdef" * 4 + "-b3"


@pytest.mark.parametrize("names, ok", [
    ([], True),
    ([B3], True),
    ([B3, "f" * 64 + "-b3", "a" * 64 + "-b3"], True),
    ([B3, "0" * 64], False),                          # a SHA-256 name: checked one by one
    ([B3, "0" * 63 + "-b3"], False),                  # one digit short
    ([B3, "A" * 64 + "-b3"], False),                  # not lowercase
    ([B3, "0" * 64 + "-B3"], False),
    ([B3, "0" * 61 + "-b3" + "-b3"], False),          # "-b3" inside: a "-" that is not hex
    ([B3[:-1], B3 + "0"], False),                     # 66 and 68 characters: the right length in all
    ([B3, "0" * 64 + "-b4"], False),
    ([B3, "é" * 64 + "-b3"], False),
    ([B3, None], False),
    ([B3, 7], False),
])
def test_many_names_are_checked_at_once_as_one_by_one(names, ok):
    """Rule 6, against Rules 1-2 one name at a time."""
    assert all_blake3_names(names) is ok
    assert ok == all(is_blob_name(n) and algorithm(n) == "blake3" for n in names)
