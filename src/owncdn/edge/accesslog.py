"""One JSON line per request, buffered and written in batches.

Rules:
1. A line is built when a response is complete (or the client went away), from the
   request's own record: no second lookup, no formatting beyond orjson.
2. Lines are buffered and written when 64 KiB are waiting, about once a second by
   the server's sweeper, and at shutdown. A crash loses at most that second.
3. "-" writes to standard output, "off" writes nothing, anything else is a file
   opened for appending (created with its directory).
"""

from __future__ import annotations

import os
import sys
import time

import orjson

FLUSH_AT = 64 * 1024


class AccessLog:
    def __init__(self, target: str, edge_id: str, location: str) -> None:
        self.target = target
        self.edge_id = edge_id
        self.location = location
        self.enabled = target != "off"
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.lines = 0
        self._sec = -1
        self._stamp = ""
        if target in ("-", "off"):
            self.fd = sys.stdout.fileno() if target == "-" else -1
        else:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def __repr__(self) -> str:
        return f"<AccessLog {self.target} lines={self.lines} buffered={self.buffered}>"

    def _time(self, now: float) -> str:
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return "%s.%03dZ" % (self._stamp, int((now - sec) * 1000))

    def write(self, req, now: float, end: float) -> None:
        if not self.enabled:
            return
        h = req.headers
        line = orjson.dumps({
            "time": self._time(now),
            "request_id": req.id,
            "service": req.service,
            "client": req.conn.client_addr,
            "method": req.method,
            "host": req.host,
            "path": req.target,
            "status": req.status,
            "bytes": req.sent,
            "cache": req.cache,
            "ttfb_ms": round((req.ttfb - req.start) * 1000, 3) if req.ttfb else None,
            "duration_ms": round((end - req.start) * 1000, 3),
            "origin_ms": round(req.origin_ms, 3) if req.origin_ms is not None else None,
            "edge": self.edge_id,
            "location": self.location,
            "user_agent": h.get("user-agent"),
            "referrer": h.get("referer"),
            "range": h.get("range"),
        }, option=orjson.OPT_APPEND_NEWLINE)
        self.buffer.append(line)
        self.buffered += len(line)
        self.lines += 1
        if self.buffered >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self.buffer or self.fd < 0:
            self.buffer.clear()
            self.buffered = 0
            return
        data = b"".join(self.buffer)
        self.buffer.clear()
        self.buffered = 0
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def close(self) -> None:
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
            self.fd = -1
