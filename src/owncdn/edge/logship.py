"""Log shipping: each destination has a spool on disk and a task that empties it.

    AccessLog.flush ──put(batch)──► LogShipper.queue ──► LogSpool (fsync) ──► send(segment) ──► ack: remove

Rules:
1. `put` only keeps the batch (the access log calls it on the event loop); the
   shipper's task writes queued batches to the spool in a thread, at once, whatever
   the destination is doing, so a batch is on disk within about a second of the
   request (the sweeper flushes the log once a second).
2. At least once: a segment is sealed just before it is sent and removed only after
   the destination accepted it. A crash or a cancel in between sends it again; the
   control plane and the S3 sink make that harmless (request ids, object names).
3. A failed send (network trouble, 5xx, 429) backs off from 0.5 s to 10 s, or for as
   long as `Retry-After` says; batches keep going to the spool meanwhile. A segment
   the destination refuses outright (4xx other than 401/408/429) would block the
   rest for ever: it is dropped, counted in `rejected_lines` and warned about.
4. Senders: `ControlSender` (zstd JSON lines, `POST /v1/logs` with the node token; the
   segment's name in `X-Log-Segment` lets the control plane recognise a resend),
   `HttpSender` (gzip JSON lines to any URL), `S3Sender` (objects partitioned
   `service=/date=`), `FileSender` (append to a file) and `StdoutSender`.
5. On close, queued batches go to the spool (nothing is sent); the next start ships them.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import zstandard

from owncdn.edge.logspool import LogSpool, Segment
from owncdn.waiting import wait_event

MIN_DELAY, MAX_DELAY = 0.5, 10.0
CONTENT_TYPE = "application/x-ndjson"


class SendError(Exception):
    """The destination did not take the segment; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(Exception):
    """The destination will never take this segment (Rule 3)."""


class LogShipper:
    def __init__(self, name: str, spool: LogSpool, sender) -> None:
        self.name = name
        self.spool = spool
        self.sender = sender
        self.queue: list[bytes] = []
        self.queued_lines: int | None = 0  # lines in `queue`; None when a batch came without its count
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.shipped_lines = 0
        self.shipped_segments = 0
        self.rejected_lines = 0
        self.failures = 0
        self.last_error = ""
        self.retry_at = 0.0
        self.delay = MIN_DELAY

    def __repr__(self) -> str:
        return f"<LogShipper {self.name} shipped={self.shipped_lines} {self.spool!r}>"

    def put(self, data: bytes, lines: int | None = None) -> None:
        """A batch from the access log (Rule 1), with its number of lines when the
        caller knows it (the spool then need not count them)."""
        self.queue.append(data)
        self.queued_lines = None if lines is None or self.queued_lines is None else self.queued_lines + lines
        self.wake.set()

    def _take(self) -> tuple[bytes, int | None]:
        """What waits in the queue, as one batch with its lines, and an empty queue."""
        data, lines = b"".join(self.queue), self.queued_lines
        self.queue, self.queued_lines = [], 0
        return data, lines

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"log-shipper-{self.name}")

    async def close(self) -> None:
        """Rule 5: what waits goes to the spool, then the task ends."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        await asyncio.to_thread(self._spool_and_close, *self._take())
        await _aclose(self.sender)

    def _spool_and_close(self, data: bytes, lines: int | None) -> None:
        self.spool.append(data, lines)
        self.spool.close()

    def stats(self) -> dict:
        spool = self.spool
        return {"shipped_lines": self.shipped_lines, "shipped_segments": self.shipped_segments,
                "spooled_lines": spool.lines, "spooled_bytes": spool.bytes, "spool_limit": spool.max_bytes,
                "dropped_lines": spool.dropped_lines, "rejected_lines": self.rejected_lines,
                "failures": self.failures, "last_error": self.last_error}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = max(0.0, self.retry_at - loop.time()) if self.retry_at else None
            await wait_event(self.wake, timeout)  # not wait_for: it can lose close()'s cancel
            self.wake.clear()
            if self.queue:
                await asyncio.to_thread(self.spool.append, *self._take())
            if loop.time() >= self.retry_at:
                await self._ship(loop)

    async def _ship(self, loop) -> None:
        """Send sealed segments, oldest first, until one fails (Rules 2 and 3)."""
        if self.spool.current is not None:
            self.spool.seal()
        while (segment := self.spool.oldest()) is not None:
            try:
                data = await asyncio.to_thread(self.spool.read, segment)
                if data:
                    await self.sender.send(segment, data)
            except Rejected as exc:
                self.rejected_lines += segment.lines
                _warn(f"log sink {self.name}: dropped {segment.lines} lines of {segment.name}: {exc}")
            except (SendError, httpx.HTTPError, OSError) as exc:
                self.failures += 1
                self.last_error = str(exc) or type(exc).__name__
                retry = getattr(exc, "retry_after", None)
                self.retry_at = loop.time() + (retry if retry is not None else self.delay)
                self.delay = min(self.delay * 2, MAX_DELAY)
                self.spool.forget()  # logspool.py rule 6: a backlog waits on disk only
                return
            self.spool.remove(segment)
            self.shipped_lines += segment.lines
            self.shipped_segments += 1
            self.delay = MIN_DELAY
            self.retry_at = 0.0
            if self.queue:  # keep the newest batches on disk while a backlog drains (Rule 1)
                await asyncio.to_thread(self.spool.append, *self._take())


# -- senders (Rule 4) ------------------------------------------------------------------
def _check(resp: httpx.Response, what: str) -> None:
    if resp.is_success:
        return
    status = resp.status_code
    text = resp.text[:200].strip()
    if status in (401, 408, 429) or status >= 500:
        retry = resp.headers.get("retry-after")
        raise SendError(f"{what}: {status} {text}", float(retry) if retry and retry.isdigit() else None)
    raise Rejected(f"{what}: {status} {text}")


class HttpSender:
    """Gzip JSON lines POSTed to `url`; 2xx is an acknowledgement."""

    encoding = "gzip"

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

    def compress(self, data: bytes) -> bytes:
        return gzip.compress(data, 1)

    async def send(self, segment: Segment, data: bytes) -> None:
        body = await asyncio.to_thread(self.compress, data)
        headers = {"content-type": CONTENT_TYPE, "content-encoding": self.encoding,
                   "x-log-segment": segment.name, **self._auth()}
        resp = await self.http.post(self.url, content=body, headers={**self.headers, **headers})
        _check(resp, f"POST {self.url}")

    def _auth(self) -> dict:
        return {}

    async def aclose(self) -> None:
        await self.http.aclose()


class ControlSender(HttpSender):
    """`POST /v1/logs` of the control plane the sync agent follows, with its node token;
    zstd (level 1) rather than gzip: a quarter of the CPU on both sides, and smaller."""

    encoding = "zstd"

    def __init__(self, agent) -> None:
        super().__init__(f"{agent.control}/v1/logs")
        self.agent = agent
        self._zstd = zstandard.ZstdCompressor(level=1)

    def compress(self, data: bytes) -> bytes:
        return self._zstd.compress(data)  # one thread at a time: the shipper sends one segment at once

    async def send(self, segment: Segment, data: bytes) -> None:
        if self.agent.token is None:
            raise SendError("not registered with the control plane yet")
        await super().send(segment, data)

    def _auth(self) -> dict:
        return self.agent._auth()


class S3Sender:
    """One object per (service, date) of a segment:
    `<prefix>/service=<s>/date=<YYYY-MM-DD>/<edge>-<segment>.jsonl.gz`, or `.parquet` with
    `format="parquet"` (edge/logparquet.py) (Rule 3 of logspool: a resent segment
    overwrites its own objects)."""

    def __init__(self, url: str, edge_id: str, client=None, format: str = "jsonl") -> None:
        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.edge_id = edge_id
        self.format = format
        self._client = client

    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")  # endpoint and keys from AWS_* (any S3-compatible store)
        return self._client

    def keys(self, segment: Segment, data: bytes) -> dict[str, bytes]:
        groups: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        for line in data.splitlines():
            try:
                record = orjson.loads(line)
                service, date = str(record.get("service") or "-"), str(record.get("time") or "")[:10]
            except orjson.JSONDecodeError:
                service, date = "-", "unknown"
            groups[(_part(service), _part(date or "unknown"))].append(line)
        prefix = f"{self.prefix}/" if self.prefix else ""
        stem = f"{_part(self.edge_id)}-{segment.name}"
        if self.format == "parquet":
            from owncdn.edge.logparquet import to_parquet

            return {f"{prefix}service={svc}/date={date}/{stem}.parquet": to_parquet(lines)
                    for (svc, date), lines in groups.items()}
        return {f"{prefix}service={svc}/date={date}/{stem}.jsonl.gz":
                gzip.compress(b"\n".join(lines) + b"\n", 6) for (svc, date), lines in groups.items()}

    def _put_all(self, segment: Segment, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        try:
            for key, body in self.keys(segment, data).items():
                if key.endswith(".parquet"):
                    client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                      ContentType="application/vnd.apache.parquet")
                else:
                    client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=CONTENT_TYPE,
                                      ContentEncoding="gzip")
        except ValueError as exc:  # lines Parquet cannot hold (logparquet Rule 2): sending again won't help
            raise Rejected(f"s3://{self.bucket}: {exc}") from None
        except (BotoCoreError, ClientError) as exc:
            raise SendError(f"s3://{self.bucket}: {exc}") from None

    async def send(self, segment: Segment, data: bytes) -> None:
        await asyncio.to_thread(self._put_all, segment, data)


class FileSender:
    """Appends to a file (created with its directory); fsynced per segment."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fdatasync(fd)
        finally:
            os.close(fd)

    async def send(self, segment: Segment, data: bytes) -> None:
        await asyncio.to_thread(self._append, data)


class StdoutSender:
    async def send(self, segment: Segment, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _part(text: str) -> str:
    """A safe path segment for an object key."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"


async def _aclose(sender) -> None:
    close = getattr(sender, "aclose", None)
    if close is not None:
        await close()


def _warn(message: str) -> None:
    print(f"owncdn edge: {message}", file=sys.stderr, flush=True)


# -- wiring ------------------------------------------------------------------------------
def start_shipping(log, settings, state_dir: Path, agent=None, edge_id: str = "edge") -> list[LogShipper]:
    """Shippers for `settings` (`edge.logs`, core/config/logs.py), each with its spool
    under `<state_dir>/logs/<name>`, attached to the access log `log` and started."""
    shippers = []
    if agent is not None and settings.ship:
        shippers.append(LogShipper("control", LogSpool(state_dir / "logs" / "control", settings.spool_size),
                                   ControlSender(agent)))
    for i, sink in enumerate(settings.sinks):
        name = f"{sink.type}-{i}"
        if sink.type == "file":
            sender = FileSender(str(sink.path))
        elif sink.type == "stdout":
            sender = StdoutSender()
        elif sink.type == "http":
            sender = HttpSender(str(sink.url), {k: str(v) for k, v in sink.headers.items()})
        else:
            sender = S3Sender(str(sink.url), edge_id, format=sink.format)
        shippers.append(LogShipper(name, LogSpool(state_dir / "logs" / name, sink.spool_size), sender))
    for shipper in shippers:
        log.add_sink(shipper)
        shipper.start()
    return shippers
