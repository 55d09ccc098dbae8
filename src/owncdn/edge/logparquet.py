"""Access-log lines as Parquet, for the S3 sink's ``format: parquet``.

Rules:
1. The columns are the log schema's (``core/logs/schema.py`` ``FIELDS``), in its
   order and with its types: int -> BIGINT, float -> DOUBLE, string -> VARCHAR,
   timestamp -> TIMESTAMP WITH TIME ZONE (UTC). ``country`` is absent at the edge
   and written as null, so files from every edge and version share one schema.
2. A line that is not a JSON object of that shape makes the whole batch fail
   (``ValueError``) rather than a file that silently lost lines; the S3 sender turns
   it into ``Rejected`` (the segment is dropped, counted and warned about).
3. The encoding is DuckDB's Parquet writer (zstd), in a private in-memory database
   per call, through a temporary file: nothing is kept between batches.
"""

from __future__ import annotations

import os
import tempfile

from owncdn.core.logs.schema import FIELDS

__all__ = ["to_parquet"]

_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "timestamp": "TIMESTAMPTZ"}


def to_parquet(lines: list[bytes]) -> bytes:
    """The lines (JSON objects, one per line) as one Parquet file's bytes."""
    import duckdb

    columns = "{" + ", ".join(f"'{name}': '{_SQL_TYPES[kind]}'" for name, kind, _, _ in FIELDS) + "}"
    with tempfile.TemporaryDirectory(prefix="owncdn-parquet-") as tmp:
        source, target = os.path.join(tmp, "lines.jsonl"), os.path.join(tmp, "lines.parquet")
        with open(source, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(
                f"COPY (SELECT * FROM read_json(?, format = 'newline_delimited', columns = {columns}))"
                " TO ? (FORMAT parquet, COMPRESSION zstd)", [source, target])
        except duckdb.Error as exc:
            raise ValueError(f"log lines do not fit the schema: {exc}") from None
        finally:
            con.close()
        with open(target, "rb") as f:
            return f.read()
