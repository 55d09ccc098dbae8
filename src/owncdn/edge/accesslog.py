"""One JSON line per request, buffered and written in batches.

Rules:
1. When a response is complete (or the client went away) the request itself is
   queued as the record: no copying and no formatting on the response path.
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
        self.pending: list = []  # finished requests
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
        """Record one request; the JSON is made in `flush`, off the response path. The
        request itself is the record (it is done with: nothing changes it any more)."""
        if not self.enabled:
            return
        req.wall = now
        req.end = end
        self.pending.append(req)
        if len(self.pending) >= FLUSH_AT:
            self.flush()

    def lines(self) -> bytes:
        """The pending records as JSON lines; clears them."""
        records, self.pending = self.pending, []
        stamp, middle = self._time, self._middle
        out = bytearray()  # appending to one buffer: many live small bytes objects cost more
        for req in records:
            start, ttfb, origin_ms = req.start, req.ttfb, req.origin_ms
            out += b'{"time":"%s","request_id":"%s",%s,"ttfb_ms":%s,"duration_ms":%.3f,"origin_ms":%s}\n' % (
                stamp(req.wall).encode(), req.id.encode(), middle(req),
                b"%.3f" % ((ttfb - start) * 1000) if ttfb else b"null",
                (req.end - start) * 1000,
                b"%.3f" % origin_ms if origin_ms is not None else b"null")
        self.written += len(records)
        return bytes(out)

    def _middle(self, req) -> bytes:
        """The fields that repeat for a repeated request, as JSON members (no braces).
        Kept on the request's Headers, which byte-identical request heads share."""
        headers = req.headers
        key = (req.conn.client_addr, req.service, req.status, req.sent, req.cache, req.host, req.target, req.method)
        notes = headers.notes
        if notes is not None:
            known = notes.get("log")
            if known is not None and known[0] == key:
                return known[1]
        h = headers.first
        member = orjson.dumps({
            "service": req.service, "client": key[0], "method": req.method, "host": req.host,
            "path": req.target, "status": req.status, "bytes": req.sent, "cache": req.cache,
            "edge": self.edge_id, "location": self.location,
            "user_agent": h.get("user-agent"), "referrer": h.get("referer"), "range": h.get("range"),
        })[1:-1]
        if notes is not None:
            notes["log"] = (key, member)
        return member

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
