"""Access-log lines as Parquet (edge/logparquet.py), read back with DuckDB."""

import datetime as dt

import duckdb
import orjson
import pytest

from owncdn.core.logs.schema import COLUMNS
from owncdn.edge.logparquet import to_parquet

LINE = {"schema_version": 1, "time": "2026-11-22T02:47:25.553Z", "request_id": "3bab2843-1a", "service": "demo",
        "client": "203.0.113.7", "scheme": "http", "protocol": "1.1", "method": "GET", "host": "demo.cdn.test",
        "path": "/", "status": 200, "bytes": 342, "cache": "MISS", "edge": "edge-fra", "location": "fra",
        "user_agent": "curl/8.5.0", "referrer": None, "range": None, "ttfb_ms": 4.112, "duration_ms": 4.301,
        "origin_ms": 3.87, "origin_bytes": 342, "traceparent": None}


def test_lines_become_one_parquet_file_with_the_schema_columns(tmp_path):
    lines = [orjson.dumps({**LINE, "request_id": f"r-{i}", "status": 200 + i}) for i in range(3)]
    path = tmp_path / "x.parquet"
    path.write_bytes(to_parquet(lines))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(f"SELECT request_id, status, ttfb_ms, country, epoch_ms(time) FROM '{path}' ORDER BY 1").fetchall()
    expected_ms = int(dt.datetime(2026, 11, 22, 2, 47, 25, 553000, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert rows == [(f"r-{i}", 200 + i, 4.112, None, expected_ms) for i in range(3)]
    names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()]
    assert tuple(names) == COLUMNS


@pytest.mark.parametrize("bad", [b"not json", orjson.dumps({**LINE, "status": "two hundred"})])
def test_a_line_that_does_not_fit_fails_the_batch(bad):
    with pytest.raises(ValueError):
        to_parquet([orjson.dumps(LINE), bad])
