"""One JSON line per request, buffered and written in batches.

Rules:
1. When a response is complete (or the client went away) the request itself is
   queued as the record: no copying and no formatting on the response path.
2. A request appends one record; every `FORMAT_AT` (256) records are formatted into
   lines at once (while they are still in the processor's caches: measured in
   bench/hit_path.py, 0.3-0.8 us less per request than formatting 2000 at a time),
   and the lines are written in batches, when 2048 records wait, about once a
   second by the server's sweeper, and at shutdown.
   A crash loses at most that second. While lines are shipped (a sink is attached) a
   batch is also flushed `SHIP_AFTER` (0.2 s) after its first record: one timer per
   batch, not per request, so a line reaches its spool within about 0.2 s.
3. "-" writes to standard output, "off" writes nothing, anything else is a file
   opened for appending (created with its directory).
4. Each batch also goes to every sink in `sinks` (`put(data, lines)`: the spools of log
   shipping, `edge/logship.py`), which only keeps it: no I/O on the caller's path.
   Requests are recorded while the target or any sink wants them.
5. Lines follow `core/logs/schema.py` (`schema_version` first); `origin_bytes` is 0
   unless the request led an origin fetch (app.py sets it when the fetch is done).
6. Formatting is cheap because requests repeat: the members a repeated request
   shares (service to range) are made once and kept on its shared Headers; the time
   is made once a second plus a table of milliseconds; a request that went to no
   origin and carries no trace ends in one constant. What is left per line is its
   id and two timings (one when the first byte was also the last).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import orjson

from owncdn.edge.tracing import log_traceparent

FLUSH_AT = 2048  # records (8 x FORMAT_AT)
FORMAT_AT = 256  # records formatted at once (Rule 2)
SHIP_AFTER = 0.2  # seconds from a batch's first record to its flush while lines are shipped (Rule 2)
_HEAD = b'{"schema_version":1,"time":"%s.'  # Rule 5: schema_version first, then the time to the second
_MS = [b"%03dZ" % ms for ms in range(1001)]  # the time's milliseconds, with the zone
_TAIL = b'"origin_ms":%s,"origin_bytes":%d,"traceparent":%s}\n'
_HIT_TAIL = _TAIL % (b"null", 0, b"null")  # Rule 6


class AccessLog:
    def __init__(self, target: str, edge_id: str, location: str) -> None:
        self.target = target
        self.edge_id = edge_id
        self.location = location
        self.enabled = target != "off"
        self.sinks: list = []  # Rule 4: log shipping's spools (edge/logship.py)
        self.pending: list = []  # finished requests
        self.formatted: list[bytes] = []  # lines of earlier records of this batch (Rule 2)
        self.formatted_count = 0
        self.written = 0
        self._loop = None
        self._timer = None  # Rule 2: the flush SHIP_AFTER the first record of a batch, when shipping
        if target in ("-", "off"):
            self.fd = sys.stdout.fileno() if target == "-" else -1
        else:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def __repr__(self) -> str:
        return f"<AccessLog {self.target} written={self.written} pending={len(self.pending)}>"

    def add_sink(self, sink) -> None:
        """Also hand every batch to `sink` (Rule 4); the log records from now on."""
        self.sinks.append(sink)
        self.enabled = True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tests): batches go at FLUSH_AT, to the sweeper and at close
            pass

    def write(self, req, now: float, end: float) -> None:
        """Record one request; the JSON is made in `flush`, off the response path. The
        request itself is the record (it is done with: nothing changes it any more)."""
        if not self.enabled:
            return
        req.wall = now
        req.end = end
        pending = self.pending
        pending.append(req)
        if len(pending) == 1:
            if self.sinks and self._timer is None and self._loop is not None:  # Rule 2: shipping wants it soon
                self._timer = self._loop.call_later(SHIP_AFTER, self._ship_flush)
        elif len(pending) >= FORMAT_AT:
            self.formatted.append(self.lines())
            self.formatted_count += FORMAT_AT
            if self.formatted_count >= FLUSH_AT:
                self.flush()

    def _ship_flush(self) -> None:
        self._timer = None
        self.flush()

    def lines(self) -> bytes:
        """The pending records as JSON lines; clears them (Rule 6: the common case is
        one cached fragment, two timings and constants)."""
        records, self.pending = self.pending, []
        out = bytearray()  # appending to one buffer: many live small bytes objects cost more
        sec, head, middle = -1, b"", self._middle
        for req in records:
            wall = req.wall
            if int(wall) != sec:  # Rule 6: the line's start up to the second, once a second
                sec = int(wall)
                head = _HEAD % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
            headers = req.headers
            conn = req.conn
            notes = headers.notes
            known = notes.get("log") if notes is not None else None
            key = (conn.client_addr, req.service, req.status, req.sent, req.cache, req.host, req.target,
                   req.method, conn.scheme, req.version, self)
            if known is None or known[0] != key:
                known = middle(req, key)
            start, ttfb, origin_ms, trace = req.start, req.ttfb, req.origin_ms, req.traceparent
            if trace is None and known[2]:  # the visitor sent a traceparent (edge/tracing.py rule 3)
                trace = log_traceparent(req)
            if origin_ms is None and trace is None and not req.origin_bytes:
                tail = _HIT_TAIL  # Rule 6: a hit's last members are constants
            else:
                tail = _TAIL % (b"%.3f" % origin_ms if origin_ms is not None else b"null", req.origin_bytes,
                                b'"%s"' % trace.encode() if trace is not None else b"null")
            duration = b"%.3f" % ((req.end - start) * 1000)
            out += b'%s%s","request_id":"%s",%s,"ttfb_ms":%s,"duration_ms":%s,%s' % (
                head, _MS[int((wall - sec) * 1000)], req.id.encode(), known[1],
                (duration if ttfb == req.end else b"%.3f" % ((ttfb - start) * 1000)) if ttfb else b"null",
                duration, tail)
        self.written += len(records)
        return bytes(out)

    def _middle(self, req, key: tuple) -> tuple:
        """The fields that repeat for a repeated request, as JSON members (no braces),
        under `key` (what they are made of). Kept on the request's Headers, which
        byte-identical request heads share (heads are shared across the edges of a
        process, hence the log itself in `key`)."""
        headers = req.headers
        h = headers.first
        member = orjson.dumps({
            "service": req.service, "client": key[0], "scheme": key[8], "protocol": key[9],
            "method": req.method, "host": req.host,
            "path": req.target, "status": req.status, "bytes": req.sent, "cache": req.cache,
            "edge": self.edge_id, "location": self.location,
            "user_agent": h.get("user-agent"), "referrer": h.get("referer"), "range": h.get("range"),
        })[1:-1]
        known = (key, member, "traceparent" in h)
        notes = headers.notes
        if notes is None:
            try:
                notes = headers.notes = {}
            except AttributeError:  # a stand-in without the slot
                return known
        notes["log"] = known
        return known

    def flush(self) -> None:
        if not self.pending and not self.formatted:
            return
        count = self.formatted_count + len(self.pending)
        self.formatted.append(self.lines())
        data = b"".join(self.formatted)
        self.formatted, self.formatted_count = [], 0
        for sink in self.sinks:  # Rule 4: with the count, which the spool would otherwise make
            sink.put(data, count)
        if self.fd < 0:
            return
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
            self.fd = -1
