"""The S3 blob store: blobs as objects ``<prefix>/<sha>`` in a bucket of S3-compatible storage.

``S3BlobStore`` keeps the rules every blob store keeps (``control/blobs.py``: names,
verification, reads, limits, collection) and this one of its own. ``open_blob_store``
(``control/blobs.py``) makes one for ``s3://bucket/prefix``, its endpoint and
credentials from the standard AWS environment.

Rules:
1. Bytes are spooled (memory up to 8 MiB, then a temp file), checked, then
   uploaded as ``<prefix>/<sha>`` (boto3 switches to multipart for large blobs). An
   object appears whole or not at all, as S3 guarantees.
2. Given ``partials_dir`` (a local directory of this control plane: `owncdn control`
   gives ``<state>/partials``), a ``PUT`` cut off keeps what came there and resumes
   from it as a directory store does (``dirblobs`` Rule 9, ``partials.py``): the
   writer's spool goes to a named file in ``<partials_dir>/tmp`` once past memory
   (``keep()`` moves it, or writes the bytes held in memory, into the partials), and
   ``writer(sha, offset)`` takes the partial and hashes its bytes again. Partials are
   this control plane's own: a resume that reaches another replica sharing the bucket
   finds none (409) and the blob is sent whole. Without ``partials_dir`` nothing is
   kept (``partials`` is None).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from owncdn.control.blobs import CHUNK, MAX_BLOB_BYTES, BlobError, BlobNotFound, Hashing, check_name
from owncdn.control.dirwriters import resume
from owncdn.control.partials import Partials
from owncdn.core.content.digest import is_blob_name
from owncdn.core.content.retention import BlobInfo

__all__ = ["S3BlobStore"]

SPOOL_BYTES = 8 << 20
HEAD_THREADS = 16


class S3BlobStore:
    """Blobs as objects ``<prefix>/<sha>`` in an S3 bucket (Rule 1)."""

    def __init__(self, bucket: str, prefix: str = "", *, client=None, max_bytes: int = MAX_BLOB_BYTES,
                 partials_dir: str | os.PathLike | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_bytes = max_bytes
        self.partials: Partials | None = None  # Rule 2
        self.spool_dir: str | None = None
        if partials_dir is not None:
            self.partials = Partials(partials_dir)
            self.spool_dir = f"{self.partials.directory}/tmp"
            shutil.rmtree(self.spool_dir, ignore_errors=True)  # spools of uploads a stop cut off
            os.makedirs(self.spool_dir)

    def __repr__(self) -> str:
        return f"<S3BlobStore s3://{self.bucket}/{self.prefix}>"

    def key(self, sha: str) -> str:
        check_name(sha)
        return f"{self.prefix}/{sha}" if self.prefix else sha

    def size(self, sha: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(sha))["ContentLength"])
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise BlobError(f"{self!r}: cannot look up blob {sha[:12]}: {_reason(exc)}") from None

    def sizes(self, hashes: Iterable[str]) -> dict[str, int | None]:
        """Each blob's size (None: missing), asked ``HEAD_THREADS`` at a time."""
        wanted = list(dict.fromkeys(hashes))
        if len(wanted) <= 1:
            return {sha: self.size(sha) for sha in wanted}
        with ThreadPoolExecutor(HEAD_THREADS) as pool:
            return dict(zip(wanted, pool.map(self.size, wanted), strict=True))

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return [sha for sha, size in self.sizes(hashes).items() if size is None]

    def writer(self, sha: str, offset: int = 0) -> _S3Writer:
        """From ``offset``: a resumed upload (Rule 2)."""
        return _S3Writer(self, sha, offset)

    def sync(self, hashes: Iterable[str]) -> None:
        """Nothing to do: an object S3 acknowledged is stored (Rule 1)."""

    def claim(self, hashes: Iterable[str], now: float | None = None) -> list[str]:
        """``missing``: objects keep their upload time (``blobs`` Rule 4)."""
        return self.missing(hashes)

    def stored(self) -> Iterator[tuple[str, BlobInfo]]:
        """Every blob under the prefix with its size and LastModified (``blobs`` Rule 4)."""
        from botocore.exceptions import BotoCoreError, ClientError

        start = f"{self.prefix}/" if self.prefix else ""
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(start):]
                    if is_blob_name(name):
                        yield name, BlobInfo(size=int(obj["Size"]), mtime=obj["LastModified"].timestamp())
        except (ClientError, BotoCoreError) as exc:
            raise BlobError(f"{self!r}: cannot list blobs: {_reason(exc)}") from None

    def delete_older(self, sha: str, cutoff: float) -> int | None:
        """Delete the blob if it was last modified before ``cutoff`` (``blobs`` Rule 4)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha))
            if head["LastModified"].timestamp() >= cutoff:
                return None
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha))
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise BlobError(f"{self!r}: cannot delete blob {sha[:12]}: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise BlobError(f"{self!r}: cannot delete blob {sha[:12]}: {_reason(exc)}") from None
        return int(head["ContentLength"])

    def read(self, sha: str, start: int = 0) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        kwargs = {"Range": f"bytes={start}-"} if start else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(sha), **kwargs)["Body"]
        except ClientError as exc:
            if _status(exc) == 404:
                raise BlobNotFound(f"no blob {sha}") from None
            if _status(exc) == 416:
                return iter(())
            raise BlobError(f"{self!r}: cannot read blob {sha[:12]}: {_reason(exc)}") from None
        return _body_chunks(body)


def _body_chunks(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


class _S3Writer(Hashing):
    def __init__(self, store: S3BlobStore, sha: str, offset: int = 0) -> None:
        super().__init__(sha, store.max_bytes)
        self.store = store
        if store.spool_dir is None:
            self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed in commit/abort
        else:
            self.spool = _NamedSpool(store.spool_dir)
            if offset:
                self.spool.resume(lambda tmp: resume(self, store, offset, tmp))
        self.out = self.spool

    def commit(self) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.verify()
            if self.store.size(self.sha) is None:
                if isinstance(self.spool, _NamedSpool):
                    source = self.spool.reader()
                else:
                    self.spool.seek(0)
                    source = self.spool
                self.store.client.upload_fileobj(source, self.store.bucket, self.store.key(self.sha))
        except (ClientError, BotoCoreError) as exc:
            raise BlobError(f"{self.store!r}: cannot store blob {self.sha[:12]}: {_reason(exc)}") from None
        finally:
            self.spool.close()
        return self.size

    def abort(self) -> None:
        self.spool.close()

    def keep(self) -> None:
        """Rule 2: the upload was cut off; what came is kept to resume from."""
        partials = self.store.partials
        try:
            stored = self.store.size(self.sha) is not None
        except BlobError:  # the bucket unreachable: keep it, a resume checks it whole anyway
            stored = False
        if partials is None or self.size < partials.min_bytes or stored:
            self.spool.close()
            return
        partials.keep(self.sha, self.spool.to_file(), self.size)


class _NamedSpool:
    """Rule 2: bytes in memory up to ``SPOOL_BYTES``, then in a named file in
    ``directory`` (so that they can be kept); read back from the start for the upload."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.memory: bytearray | None = bytearray()
        self.file = None
        self.path: str | None = None

    def resume(self, take) -> None:
        """On disk from the start: ``take(path)`` fills the file and gives a descriptor at its end."""
        self.path = self._new_path()
        try:
            self.file = os.fdopen(take(self.path), "r+b")
        except BaseException:
            self.close()
            raise
        self.memory = None

    def write(self, data) -> None:
        if self.memory is not None:
            self.memory += data
            if len(self.memory) <= SPOOL_BYTES:
                return
            data, self.memory = self.memory, None
            self.path = self._new_path()
            self.file = open(self.path, "w+b")  # noqa: SIM115 - closed in close or to_file
        self.file.write(data)

    def reader(self):
        """For the upload: a file object of the bytes, at their start."""
        if self.memory is not None:
            self.file, self.memory = io.BytesIO(self.memory), None
        self.file.flush()
        self.file.seek(0)
        return self.file

    def to_file(self) -> str:
        """The bytes in a closed file of their own: its path (no longer the spool's)."""
        if self.memory is not None:
            self.path = self._new_path()
            with open(self.path, "wb") as f:
                f.write(self.memory)
            self.memory = None
        else:
            self.file.close()
            self.file = None
        path, self.path = self.path, None
        return path

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.memory = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None

    def _new_path(self) -> str:
        fd, path = tempfile.mkstemp(dir=self.directory, prefix="s3.")
        os.close(fd)
        return path


def _status(exc) -> int:
    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    if code in ("404", "NoSuchKey", "NotFound"):
        return 404
    if code in ("416", "InvalidRange"):
        return 416
    return int(meta.get("HTTPStatusCode", 0) or 0)


def _reason(exc) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".strip(": ") or type(exc).__name__
