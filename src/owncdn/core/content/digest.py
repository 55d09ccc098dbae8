"""Blob names: the digest a blob's bytes are stored under, and which hash made it.

A pushed file's bytes are stored once, named by a digest of them (content
addressing). The name says which hash computed it:

    <64 lowercase hex>-b3   BLAKE3 (256-bit output): what a push names content with
    <64 lowercase hex>      SHA-256: blobs of releases pushed before BLAKE3

Rules:
1. ``algorithm(name)`` is ``"blake3"``, ``"sha256"`` or None: nothing else is a blob
   name. A name never changes meaning, so stores shared by both kinds (the control
   plane's directory or S3 bucket, an edge's ``blobs/``) need no other record of which
   hash a blob was named by: an edge that hashes its blobs again after a reboot, or a
   store that checks an upload, reads it from the name.
2. Names are made of ``[0-9a-f]`` and ``-b3``: a file name, an S3 key (its "safe"
   characters) and a URL path segment (RFC 3986 unreserved) as they are, with no
   escaping. Both forms begin with the hex digits, so what takes a name's first
   characters holds for either: the ``<name[:2]>/`` directories of the blob stores,
   ``name[:12]`` in messages and temp names, and the ETag (its first 32 hex digits,
   ``site.py``). A suffix rather than an OCI-style ``blake3:`` prefix for these
   reasons (a colon is escaped in URLs and is among S3's characters "that might
   require special handling").
3. ``hasher(name)`` is a new hash object of the name's algorithm (ValueError for
   what is not a name) and ``name_of(h)`` the name of the bytes fed to ``h`` so far:
   a blob is verified with ``name_of(h) == name``. SHA-256 names stay valid for good:
   releases stored with them are served, rolled back to, retained and collected, and
   an older client's push is still accepted.
4. Bytes hashed now are named with ``NEW`` (BLAKE3, about 4x less CPU than SHA-256
   here: every pushed byte is hashed by the client, the control plane and each edge);
   a file the client's hash cache remembers by its SHA-256 name keeps it while it is
   unchanged (``client/hashcache.py`` rule 4). ``blake3`` and ``hashlib`` are imported
   on first use, and a name is checked with string methods rather than a regular
   expression: `owncdn push` starts without ``re`` (with ``enum``, about 4 ms) and
   without ``hashlib`` (OpenSSL's ``_hashlib``, about 2 ms).
5. The manifest id (the SHA-256 of a manifest's canonical encoding, ``manifest.py``
   rule 4) is not a blob name and stays SHA-256 (``sha256_hex``).
6. ``all_blake3_names(names)`` checks many names at once (the client's hash cache:
   100,000 of them in about 9 ms instead of 29 one by one): joined, they must be 67
   characters each, the 65th, 66th and 67th of each ``-``, ``b`` and ``3``, and with
   the hex digits deleted only those ``-``s may remain.
"""

from __future__ import annotations

import sys

__all__ = ["ALGORITHMS", "NEW", "algorithm", "all_blake3_names", "digest", "hasher", "is_blob_name", "name_of",
           "new_hasher", "sha256_hex"]

NEW = "blake3"
ALGORITHMS = {"blake3": "-b3", "sha256": ""}  # algorithm -> the suffix of its names (Rule 1)
_HEX = b"0123456789abcdef"
_SMALL = 1 << 20  # sha256_hex: inputs hashed without OpenSSL when hashlib is not loaded (break-even ~0.8 MB)
_blake3 = None  # the blake3 class, once imported (Rule 4)


def algorithm(name: object) -> str | None:
    """Which hash ``name`` was made by, or None when it is not a blob name (Rule 1)."""
    if not is_blob_name(name):
        return None
    return "sha256" if len(name) == 64 else "blake3"


def is_blob_name(value: object) -> bool:
    """True for a blob name of either form (Rule 1): ``[0-9a-f]{64}(-b3)?`` (ASCII, and
    deleting the hex digits from the first 64 characters leaves nothing)."""
    return (isinstance(value, str) and (len(value) == 64 or (len(value) == 67 and value.endswith("-b3")))
            and value.isascii() and not value[:64].encode().translate(None, _HEX))


def all_blake3_names(names: list) -> bool:
    """Rule 6: True when every item of ``names`` is a BLAKE3 blob name (False also when
    some other is a SHA-256 name: check those one by one)."""
    try:
        joined = "".join(names)
    except TypeError:  # not all strings
        return False
    n = len(names)
    if len(joined) != 67 * n or not joined.isascii():
        return False
    if joined[64::67] != "-" * n or joined[65::67] != "b" * n or joined[66::67] != "3" * n:
        return False
    return joined.encode().translate(None, _HEX) == b"-" * n  # the "-"s above are all that is not hex


def new_hasher(algo: str = NEW, max_threads: int = 1):
    """A new hash object for ``algo`` (``max_threads``: BLAKE3's, for large inputs)."""
    if algo == "blake3":
        global _blake3
        if _blake3 is None:
            from blake3 import blake3 as _blake3
        return _blake3(max_threads=max_threads) if max_threads != 1 else _blake3()
    if algo == "sha256":
        import hashlib

        return hashlib.sha256()
    raise ValueError(f"unknown blob hash {algo!r}: expected one of {', '.join(ALGORITHMS)}")


def hasher(name: str):
    """A new hash object of the algorithm ``name`` says (Rule 3)."""
    algo = algorithm(name)
    if algo is None:
        raise ValueError(f"blob name {str(name)[:80]!r}: expected 64 lowercase hex digits, "
                         "then -b3 (BLAKE3) or nothing (SHA-256)")
    return new_hasher(algo)


def name_of(h) -> str:
    """The blob name of the bytes fed to ``h`` (a ``new_hasher`` object) so far (Rule 3)."""
    return h.hexdigest() + ALGORITHMS[h.name]


def sha256_hex(data) -> str:
    """The SHA-256 of ``data`` in hex (manifest ids, Rule 5): with OpenSSL's where
    ``hashlib`` is imported already or the input is large, else with Python's own
    ``_sha256`` (`owncdn push`: about 0.3 ms more for a manifest of 1,065 files, against
    about 2 ms to load OpenSSL's)."""
    if "hashlib" not in sys.modules and len(data) < _SMALL:
        try:
            from _sha256 import sha256
        except ImportError:  # Python 3.12 calls it _sha2
            try:
                from _sha2 import sha256
            except ImportError:  # pragma: no cover - a Python built without them
                from hashlib import sha256
        return sha256(data).hexdigest()
    import hashlib

    return hashlib.sha256(data).hexdigest()


def digest(data, algo: str = NEW) -> str:
    """The blob name of ``data`` (bytes-like) under ``algo`` (Rule 4)."""
    h = new_hasher(algo)
    h.update(data)
    return name_of(h)
