"""One JSON line per request, buffered and written in batches.

Rules:
1. A record is taken when a response is complete (or the client went away), from
   the request's own fields: no second lookup, no formatting on the response path.
2. A request appends one tuple; lines are formatted and written in batches, when
   2000 records wait, about once a second by the server's sweeper, and at shutdown.
   A crash loses at most that second.
3. "-" writes to standard output, "off" writes nothing, anything else is a file
   opened for appending (created with its directory).
"""

from __future__ import annotations

import os
import sys
import time

import orjson

FLUSH_AT = 2000  # records


class AccessLog:
    def __init__(self, target: str, edge_id: str, location: str) -> None:
        self.target = target
        self.edge_id = edge_id
        self.location = location
        self.enabled = target != "off"
        self.pending: list[tuple] = []
        self.written = 0
        self._sec = -1
        self._stamp = ""
        if target in ("-", "off"):
            self.fd = sys.stdout.fileno() if target == "-" else -1
        else:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def __repr__(self) -> str:
        return f"<AccessLog {self.target} written={self.written} pending={len(self.pending)}>"

    def _time(self, now: float) -> str:
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return "%s.%03dZ" % (self._stamp, int((now - sec) * 1000))

    def write(self, req, now: float, end: float) -> None:
        """Record one request; the JSON is made in `flush`, off the response path."""
        if not self.enabled:
            return
        h = req.headers.first
        self.pending.append((
            now, req.id, req.service, req.conn.client_addr, req.method, req.host, req.target,
            req.status, req.sent, req.cache, req.ttfb, req.start, end, req.origin_ms,
            h.get("user-agent"), h.get("referer"), h.get("range"),
        ))
        if len(self.pending) >= FLUSH_AT:
            self.flush()

    def lines(self) -> bytes:
        """The pending records as JSON lines; clears them."""
        records, self.pending = self.pending, []
        edge, location, stamp, dumps = self.edge_id, self.location, self._time, orjson.dumps
        out = bytearray()  # appending to one buffer: many live small bytes objects cost more
        for (now, rid, service, client, method, host, path, status, sent, cache, ttfb, start, end,
             origin_ms, ua, referrer, rng) in records:
            out += dumps({
                "time": stamp(now), "request_id": rid, "service": service, "client": client,
                "method": method, "host": host, "path": path, "status": status, "bytes": sent,
                "cache": cache,
                "ttfb_ms": round((ttfb - start) * 1000, 3) if ttfb else None,
                "duration_ms": round((end - start) * 1000, 3),
                "origin_ms": round(origin_ms, 3) if origin_ms is not None else None,
                "edge": edge, "location": location,
                "user_agent": ua, "referrer": referrer, "range": rng,
            }, option=orjson.OPT_APPEND_NEWLINE)
        self.written += len(records)
        return bytes(out)

    def flush(self) -> None:
        if not self.pending:
            return
        data = self.lines()
        if self.fd < 0:
            return
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def close(self) -> None:
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
            self.fd = -1
