"""The content-addressed blob store of pushed releases: a directory, or S3.

A blob is the bytes of one pushed file, named by a digest of them: ``<hex>-b3``
(BLAKE3) or, for blobs pushed before BLAKE3, ``<hex>`` (SHA-256); the name says which
(``owncdn.core.content.digest``). ``open_blob_store(spec)`` gives a ``DirBlobStore`` for a path and an
``S3BlobStore`` for ``s3://bucket/prefix`` (endpoint and credentials from the
standard AWS environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).

This module holds what both stores share: the rules below, the errors, the
``BlobStore`` and ``BlobWriter`` protocols, and ``Hashing`` (what a writer does with
the bytes it receives). The stores, each with rules of its own besides these:
``dirblobs.py`` (``DirBlobStore``; the ways bytes reach it, ``dirwriters.py``) and
``s3blobs.py`` (``S3BlobStore``).

Rules:
1. A blob is stored only under the hash of its bytes: ``writer(sha).write(...)``
   hashes while receiving (with the hash its name says), and ``commit()`` raises ``BlobMismatch`` (storing nothing)
   when the bytes hash to anything else. So whatever is stored is right, and storing
   the same blob twice is harmless (idempotent).
2. ``read(sha, start)`` yields the bytes from offset ``start`` (so a fetch that broke
   resumes where it stopped); ``BlobNotFound`` when there is no such blob. A
   directory store also gives ``read_into`` (a small blob into a buffer) and
   ``open_blob`` (a descriptor and the blob's offset in it, for ``sendfile``), and
   these three read the blobs it was offered before they are stored (``dirblobs``
   Rule 2).
3. Blobs larger than ``max_bytes`` (5 GiB by default; `owncdn control --max-blob-size`)
   are refused (``BlobTooLarge``).
   Credentials never appear in reprs, logs or messages.
4. Collection (``owncdn.control.blobgc``): ``stored()`` lists every blob with its
   size and age (directory: mtime; S3: LastModified); ``claim(hashes)`` is
   ``missing`` that also marks the present blobs as wanted now (directory: their
   mtime is refreshed when older than ``CLAIM_REFRESH`` seconds; S3: nothing, its
   objects keep their upload time), so a push that found them present is inside the
   grace period; ``delete_older(sha, cutoff)`` deletes a blob only if it is still
   older than ``cutoff`` when deleted (how a directory store makes sure: ``dirblobs``
   Rules 3-5).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from owncdn.core.content.digest import hasher, is_blob_name, name_of
from owncdn.core.content.retention import BlobInfo

if TYPE_CHECKING:
    from owncdn.control.dirblobs import DirBlobStore
    from owncdn.control.s3blobs import S3BlobStore

__all__ = [
    "BlobError", "BlobMismatch", "BlobNotFound", "BlobStore", "BlobTooLarge", "BlobWriter", "Hashing",
    "StoreInUse", "check_name", "open_blob_store",
]

CHUNK = 256 * 1024  # what a read yields at a time (Rule 2)
MAX_BLOB_BYTES = 5 << 30  # Rule 3


class BlobError(Exception):
    """Base of the blob store's errors."""


class BlobMismatch(BlobError, ValueError):
    """The bytes received do not hash to the name they were sent under."""


class BlobTooLarge(BlobError, ValueError):
    """A blob larger than the store accepts."""


class BlobNotFound(BlobError, LookupError):
    """No blob has this hash."""


class StoreInUse(BlobError, OSError):
    """A directory blob store another process holds (``dirblobs`` Rule 7)."""


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> int: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    def missing(self, hashes: Iterable[str]) -> list[str]: ...
    def size(self, sha: str) -> int | None: ...
    def sizes(self, hashes: Iterable[str]) -> dict[str, int | None]: ...
    def writer(self, sha: str) -> BlobWriter: ...
    def read(self, sha: str, start: int = 0) -> Iterator[bytes]: ...
    def sync(self, hashes: Iterable[str]) -> None: ...
    def claim(self, hashes: Iterable[str]) -> list[str]: ...
    def stored(self) -> Iterator[tuple[str, BlobInfo]]: ...
    def delete_older(self, sha: str, cutoff: float) -> int | None: ...


def check_name(sha: str) -> None:
    if not is_blob_name(sha):
        raise ValueError(f"blob name {sha[:80]!r}: expected 64 lowercase hex digits, then -b3 (BLAKE3) "
                         "or nothing (SHA-256)")


class Hashing:
    """Hash and count what is written, refusing more than ``limit`` bytes (Rules 1, 3)."""

    def __init__(self, sha: str, limit: int) -> None:
        check_name(sha)
        self.sha, self.limit = sha, limit
        self.hash = hasher(sha)
        self.size = 0

    def count(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BlobTooLarge(f"blob {self.sha[:12]}: larger than the store's limit of {self.limit} bytes")
        self.hash.update(data)

    def write(self, data: bytes) -> None:
        """Count and hash ``data``, then hand it to ``self.out`` (the temp file or spool);
        too many bytes abort the write."""
        try:
            self.count(data)
        except BlobTooLarge:
            self.abort()
            raise
        self.out.write(data)

    def abort(self) -> None:
        raise NotImplementedError

    def verify(self) -> None:
        got = name_of(self.hash)
        if got != self.sha:
            raise BlobMismatch(f"the {self.size} bytes sent as blob {self.sha} hash to {got}; nothing was stored")


# -- choosing one --------------------------------------------------------------------------

def open_blob_store(spec: str | Path, partials_dir: str | Path | None = None,
                    max_bytes: int = MAX_BLOB_BYTES) -> DirBlobStore | S3BlobStore:
    """``s3://bucket/prefix`` -> ``S3BlobStore`` (keeping partial uploads in
    ``partials_dir``, if given: ``s3blobs`` Rule 2); anything else is a directory.
    Either refuses blobs larger than ``max_bytes`` (Rule 3)."""
    text = str(spec)
    if text.startswith("s3://"):
        from owncdn.control.s3blobs import S3BlobStore

        parts = urlsplit(text)
        if not parts.netloc:
            raise ValueError(f"blob store {text!r}: expected s3://bucket/prefix")
        return S3BlobStore(parts.netloc, parts.path, partials_dir=partials_dir, max_bytes=max_bytes)
    from owncdn.control.dirblobs import DirBlobStore

    return DirBlobStore(text, max_bytes=max_bytes)

