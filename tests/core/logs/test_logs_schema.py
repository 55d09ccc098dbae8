"""The access-log line schema: what the edge writes is what the control plane reads."""

import orjson
import pytest

from owncdn.core.logs.schema import COLUMNS, FIELDS, SCHEMA_VERSION, normalize

GOOD = {"schema_version": 1, "time": "2026-11-20T10:00:00.000Z", "request_id": "ab-1", "service": "www",
        "client": "192.0.2.1", "scheme": "http", "protocol": "1.1", "method": "GET", "host": "www.test",
        "path": "/", "status": 200, "bytes": 5, "cache": "HIT", "edge": "e", "location": "fra",
        "user_agent": None, "referrer": None, "range": None, "ttfb_ms": 0.5, "duration_ms": 1, "origin_ms": None,
        "origin_bytes": 0, "traceparent": None}


def test_a_good_line_becomes_a_row_in_column_order():
    row = normalize(GOOD)
    assert dict(zip(COLUMNS, row)) == {**GOOD, "duration_ms": 1.0, "country": None}


@pytest.mark.parametrize("change,message", [
    ({"status": "200"}, "'status': expected an integer"),
    ({"status": True}, "'status': expected an integer"),
    ({"ttfb_ms": "fast"}, "'ttfb_ms': expected a number"),
    ({"path": 5}, "'path': expected a string"),
    ({"request_id": None}, "'request_id' is missing"),
    ({"schema_version": 99}, "schema_version 99"),
])
def test_bad_lines_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        normalize({**GOOD, **change})


def test_a_line_without_newer_fields_reads_as_null_or_zero():
    old = {k: v for k, v in GOOD.items() if k not in ("origin_bytes", "traceparent", "schema_version")}
    row = dict(zip(COLUMNS, normalize(old)))
    assert (row["schema_version"], row["origin_bytes"], row["traceparent"]) == (1, 0, None)


def test_long_text_is_cut():
    assert len(dict(zip(COLUMNS, normalize({**GOOD, "path": "/" + "a" * 10000})))["path"]) == 4096


def test_the_edges_lines_follow_the_schema():
    from owncdn.edge.accesslog import AccessLog

    class Conn:
        client_addr, scheme = "192.0.2.9", "https"

    class Headers:
        notes = None
        first = {"user-agent": "ua", "referer": "https://r.test/"}

    class Req:
        conn, headers, service, status, sent, cache, host, target, method, version = (
            Conn(), Headers(), "www", 200, 10, "MISS", "www.test", "/x", "GET", "2")
        id, start, ttfb, end, origin_ms, origin_bytes, traceparent = "ab-7", 1.0, 1.001, 1.002, 0.5, 10, None

    log = AccessLog("off", "edge-1", "fra")
    log.add_sink(sink := type("Sink", (), {"put": lambda self, data, lines: setattr(self, "data", data)})())
    log.write(Req(), 1_795_168_800.25, 1.002)
    log.flush()
    record = orjson.loads(sink.data)
    assert list(record) == [c for c in COLUMNS if c != "country"] or set(record) == set(COLUMNS) - {"country"}
    row = dict(zip(COLUMNS, normalize(record)))
    assert (row["schema_version"], row["time"], row["client"], row["protocol"], row["origin_bytes"]) == (
        SCHEMA_VERSION, "2026-11-20T10:00:00.250Z", "192.0.2.9", "2", 10)
    assert {f[0] for f in FIELDS} == set(COLUMNS)


def test_records_are_formatted_in_small_groups_but_written_in_big_batches(tmp_path):
    """edge/accesslog.py Rule 2: every FORMAT_AT records become lines at once; the file
    and the sinks get one batch at FLUSH_AT records (or at a flush), in order."""
    from owncdn.edge.accesslog import FLUSH_AT, FORMAT_AT, AccessLog

    class Conn:
        client_addr, scheme = "192.0.2.9", "http"

    class Headers:
        notes = None
        first = {}

    def request(n):
        req = type("Req", (), {})()
        req.conn, req.headers, req.service, req.status, req.sent, req.cache = Conn(), Headers(), "www", 200, 5, "HIT"
        req.host, req.target, req.method, req.version = "www.test", f"/{n}", "GET", "1.1"
        req.id, req.start, req.ttfb, req.end, req.origin_ms, req.origin_bytes, req.traceparent = (
            f"ab-{n}", 1.0, 1.001, 1.002, None, 0, None)
        return req

    path = tmp_path / "access.log"
    log = AccessLog(str(path), "edge-1", "fra")
    got = []
    log.sinks.append(type("Sink", (), {"put": lambda self, data, lines: got.append((data.count(b"\n"), lines))})())
    for n in range(FORMAT_AT + 10):
        log.write(request(n), 1_795_168_800.0, 1.002)
    assert (len(log.formatted), len(log.pending), path.read_bytes(), got) == (1, 10, b"", [])
    for n in range(FORMAT_AT + 10, FLUSH_AT + 5):
        log.write(request(n), 1_795_168_800.0, 1.002)
    assert got == [(FLUSH_AT, FLUSH_AT)]  # written when FLUSH_AT records were formatted
    log.close()
    assert got[1:] == [(5, 5)]
    paths = [orjson.loads(line)["path"] for line in path.read_bytes().splitlines()]
    assert paths == [f"/{n}" for n in range(FLUSH_AT + 5)]
