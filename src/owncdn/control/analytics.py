"""The control plane's analytics store: shipped access-log lines in DuckDB.

Rules:
1. One DuckDB file (``<state>/analytics.duckdb`` by default), table ``log_lines`` with
   the columns of ``core/logs/schema.py`` plus ``seq`` (arrival order, for tail) and
   ``received``; the view ``logs`` is what users query.
2. One writer thread owns every write: ``ingest_lines(data)`` queues a batch and returns
   a future that resolves once the batch is committed, with the counts. The writer
   puts the batch in a file in its inbox (``<db>.inbox/``, removed once read) and
   DuckDB's ``read_json`` parses it (no Python per line; a named batch goes from the
   reader into the table in one statement); a field of the wrong type reads as null,
   and a line whose required field is null is invalid, not stored. A commit starts
   at most every ``COMMIT_EVERY`` (0.1 s): the batches that arrive meanwhile (from
   every edge) are written in one transaction, and its named batches through one
   inbox file and one statement (a commit's statements cost milliseconds of CPU,
   whatever their size: with many edges posting small batches, each with its own
   commit, that was most of the ingest's cost). DuckDB checkpoints at
   ``CHECKPOINT_WAL``. The API acknowledges a batch only after the commit, so an edge
   removes its segment only when the lines are stored.
3. De-duplication, so a batch an edge sends twice (after a crash or a lost
   acknowledgement) adds nothing. A batch that names itself (``batch``: the sender
   and its spool segment, which never changes once sealed, logspool.py Rule 2) is
   stored once: its name goes into ``log_batches`` in the same transaction, a batch
   seen before is answered as all duplicates without being parsed, and its lines are
   not compared one by one (an edge writes each request into exactly one segment).
   When a commit's named batches had lines that were not stored (invalid), they are
   written again one by one, so each batch's counts are its own; a name that comes
   twice in one group waits for the next commit, which knows it.
   Other batches are de-duplicated by ``request_id``: lines repeated inside the batch,
   and lines already stored with the same ``time`` range (a resent line keeps its
   time), count as duplicates. No primary-key index: keeping one costs more per line
   than both checks together (a store made with one still works).
4. ``country`` is filled at ingest from the client address through the GeoIP database
   (``owncdn.dns.geo``) when there is one, else left null.
5. Reads (stats, top, tail, query) use their own cursors, from any thread. A user's
   query must be one SELECT (or WITH ... SELECT) statement, as DuckDB itself parses
   it; the database has file access switched off (``enable_external_access``) except
   for the writer's inbox (``allowed_directories``: batches on their way in, which
   the logs hold anyway), so no query reads other files or writes any; it runs with a
   row limit and is interrupted after a timeout.
6. Stats and top lists leave out the fleet's own requests (paths under
   ``/.well-known/owncdn/``: the health monitor's checks through each edge's request
   path); they stay in ``logs`` for whoever wants them.
7. Ingest is background work: while the machine's CPUs are busy with other work
   (edges serving visitors on the same machine), the writer paces itself to a tenth of
   a core for at most ``yield_for`` seconds in a row (``core/logs/pace.py``); the
   batches wait (429 when the queue is full, the lines in the edges' spools) and go in
   once the load eases. ``yield_for`` 0: never. Reads are not paced.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy
import orjson

from owncdn.core.logs.pace import YIELD_FOR, IngestPace, idle_and_total
from owncdn.core.logs.schema import CACHED, COLUMNS, FIELDS, SCHEMA_VERSION, normalize
from owncdn.core.logs.window import bucket_seconds

_SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMP"}
QUERY_ROWS = 10_000
QUERY_SECONDS = 10.0
# Rule 2: DuckDB checkpoints (compresses the new rows into the file) when its write-ahead log
# passes this; 64 MB rather than the default 16 MB: about a fifth less CPU per stored line
# (3.7 vs 4.5 us, checkpoints included: a partly filled row group is compressed again at
# every checkpoint) and a smaller file.
CHECKPOINT_WAL = "64MB"


class QueryRefused(ValueError):
    """The SQL is not a single read-only SELECT, or did not run (the message says why)."""


def _create_sql() -> str:
    cols = []
    for name, kind, _nullable, _ in FIELDS:
        sql_type = _SQL_TYPES[kind]
        cols.append(f"{name} {sql_type}")  # Rule 3: no primary-key index
    cols += ["seq BIGINT", "received TIMESTAMP"]
    return "CREATE TABLE IF NOT EXISTS log_lines (" + ", ".join(cols) + ")"


_INPUT = [f for f in FIELDS if f[0] != "country"]  # Rule 4: the control plane fills country
_SPEC = "{" + ",".join(f'"{name}":"{"BIGINT" if kind == "int" else "DOUBLE" if kind == "float" else "VARCHAR"}"'
                       for name, kind, _n, _d in _INPUT) + "}"
_REQUIRED = [name for name, _k, nullable, _d in _INPUT if not nullable and name not in ("schema_version", "origin_bytes")]


def _lines_sql(source: str) -> str:
    """The lines of ``source`` (a table function giving one row of ``_SPEC`` columns per
    line) as typed columns, ``n`` (its place in the batch) and ``valid``; ``$geo``: fill
    country. Rule 2: DuckDB's JSON reader parses the lines."""
    cols = []
    for name, kind, _n, _d in _INPUT:
        if name == "schema_version":
            cols.append("coalesce(r.schema_version, 1) AS schema_version")
        elif name == "origin_bytes":
            cols.append("coalesce(r.origin_bytes, 0) AS origin_bytes")
        else:
            cols.append(f"r.{name} AS {name}")
    cols.append("CASE WHEN $geo THEN owncdn_country(r.client) END AS country")
    valid = " AND ".join([f"r.{n} IS NOT NULL" for n in _REQUIRED]
                         + [f"coalesce(r.schema_version, 1) BETWEEN 1 AND {SCHEMA_VERSION}"])
    return f"SELECT {', '.join(cols)}, row_number() OVER () AS n, coalesce({valid}, false) AS valid FROM {source} r"


# Rule 2: the batch is a file in the writer's inbox that DuckDB's JSON reader reads at C
# speed (a line that is not JSON, or not an object, reads as all nulls: invalid). The
# reader makes `time` a TIMESTAMP itself (the same values as a cast of the string, null when
# it is not one): about 7% less CPU per line than casting the string after reading it.
_READ_TYPES = {"int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMP"}
_READ = ("read_json($path, format='newline_delimited', ignore_errors=true, columns="
         + "{" + ",".join(f"'{name}':'{_READ_TYPES.get(kind, 'VARCHAR')}'" for name, kind, _n, _d in _INPUT) + "})")
_SELECT = "SELECT " + ", ".join(COLUMNS) + ", $seq + n AS seq, make_timestamp($received::BIGINT) AS received "
# Rule 3, a named batch: its valid lines as they are, straight from the reader.
_INSERT_NAMED = f"INSERT INTO log_lines {_SELECT}FROM ({_lines_sql(_READ)}) WHERE valid"
# Rule 3, any other batch, staged first (a filter over the reader would parse each line
# once more for the duplicate check): what is new (first of its id in the batch, not
# stored in its time range).
_STAGE = f"CREATE OR REPLACE TEMP TABLE incoming AS {_lines_sql(_READ)}"
_INSERT_NEW = ("INSERT INTO log_lines " + _SELECT + "FROM incoming i WHERE valid AND NOT EXISTS ("
               "SELECT 1 FROM log_lines l WHERE l.time BETWEEN (SELECT min(time) FROM incoming WHERE valid) "
               "AND (SELECT max(time) FROM incoming WHERE valid) AND l.request_id = i.request_id) "
               "QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY n) = 1")
_BATCHES = "CREATE TABLE IF NOT EXISTS log_batches (batch VARCHAR PRIMARY KEY, accepted BIGINT, lines BIGINT, received TIMESTAMP)"
COMMIT_EVERY = 0.1  # seconds at the least from the start of one commit to the start of the next (Rule 2)
MAX_GROUP = 64  # batches in one commit at the most
PACE_STEP = 0.1  # seconds between looks at the machine while the writer yields (Rule 7)
BATCH_DAYS = 30  # names of stored batches are kept this long (an edge resending later than that duplicates)


class Analytics:
    def __init__(self, path: Path | str, geo=None, *, threads: int = 1, memory_limit: str = "512MB",
                 commit_every: float = COMMIT_EVERY, yield_for: float = YIELD_FOR) -> None:
        # threads=1: ingest costs about 12% less CPU a line than with 2 (no hand-offs between
        # DuckDB's workers), and the stats queries read small time ranges.
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.geo = geo  # a GeoDatabase (owncdn.dns.geo) or None (Rule 4)
        self.commit_every = commit_every  # Rule 2
        self.pace = IngestPace(os.cpu_count() or 1, os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100,
                               most=yield_for)  # Rule 7
        self.db = duckdb.connect(self.path, config={"threads": threads, "memory_limit": memory_limit,
                                                    "checkpoint_threshold": CHECKPOINT_WAL})
        self.db.execute(_create_sql())
        self.db.execute(_BATCHES)
        self.db.execute("CREATE OR REPLACE VIEW logs AS SELECT * EXCLUDE (seq) FROM log_lines")
        self.inbox = self._make_inbox()  # Rule 2: batches on their way into DuckDB's JSON reader
        try:
            self.db.execute("SET allowed_directories = [" + _quote(str(self.inbox) + "/") + "]")
            self.db.execute("SET enable_external_access = false")  # Rule 5
        except duckdb.InvalidInputException:  # the same file opened twice in a process: one instance, set already
            pass
        self._files = 0
        self.seq = self.db.execute("SELECT coalesce(max(seq), 0) FROM log_lines").fetchall()[0][0]
        self._pruned = 0.0
        self._countries: dict[str, str | None] = {}
        self._jobs: queue.Queue = queue.Queue()
        self.accepted = 0
        self.duplicates = 0
        self.changed = threading.Condition()
        self._closing = threading.Event()  # Rule 7: a yielding writer stops waiting
        self._writer = threading.Thread(target=self._write_loop, name="analytics-writer", daemon=True)
        self._writer.start()

    def _make_inbox(self) -> Path:
        """``<db>.inbox/`` next to the database (emptied: what a crash left was never
        acknowledged), or a temporary directory for an in-memory store."""
        if self.path == ":memory:":
            return Path(tempfile.mkdtemp(prefix="owncdn-analytics-"))
        inbox = Path(self.path).with_suffix(".inbox")
        inbox.mkdir(exist_ok=True)
        for leftover in inbox.glob("*.jsonl"):
            leftover.unlink(missing_ok=True)
        return inbox

    def __repr__(self) -> str:
        return f"<Analytics {self.path} seq={self.seq} accepted={self.accepted} duplicates={self.duplicates}>"

    # -- writing (Rules 2-4) ------------------------------------------------------------------
    def ingest(self, records: list[dict]) -> Future:
        """Decoded lines; see ``ingest_lines``."""
        return self.ingest_lines(b"".join(orjson.dumps(r) + b"\n" for r in records))

    def ingest_lines(self, data: bytes, batch: str | None = None) -> Future:
        """Queue a batch of JSON lines; the future gives ``(accepted, duplicates, invalid,
        problems)`` once it is committed (Rule 2); ``problems`` says why, for the first
        few invalid lines. ``batch`` names the batch for de-duplication (Rule 3): the
        sender and its segment, the same on every resend."""
        future: Future = Future()
        self._jobs.put((data, batch, future))
        return future

    def _write_loop(self) -> None:
        cursor = self.db.cursor()
        cursor.create_function("owncdn_country", self._country, ["VARCHAR"], "VARCHAR",
                               null_handling="special")  # Rule 4
        held: list = []  # jobs taken but left for the next commit (a batch name repeated in a group)
        next_at = paced = float("-inf")  # when the next commit may start (Rule 2), and while yielding (Rule 7)
        while True:
            jobs, held = held or [self._jobs.get()], []
            pause = next_at - time.monotonic()
            if pause > 0 and None not in jobs:  # Rule 2: batches that arrive meanwhile share the commit
                time.sleep(pause)
            if None not in jobs:
                self._yield_until(paced)
            while len(jobs) < MAX_GROUP and not self._jobs.empty():  # batches that waited: one commit for all
                jobs.append(self._jobs.get())
            stop = None in jobs
            jobs, held = _split_at_repeat([j for j in jobs if j is not None])
            if jobs:
                start, cpu = time.monotonic(), time.thread_time()
                self.pace.observe(start, _cpu_jiffies(), cpu)  # Rule 7
                self._run(cursor, jobs)
                next_at = start + self.commit_every
                paced = start + self.pace.gap(start, time.thread_time() - cpu, self.commit_every)
            if stop and not held:
                cursor.close()
                return
            if stop:
                self._jobs.put(None)

    def _yield_until(self, until: float) -> None:
        """Rule 7: wait until ``until``, looking at the machine every ``PACE_STEP``: once
        it is no longer busy, the backlog goes in at once."""
        while (pause := until - time.monotonic()) > 0:
            if self._closing.wait(min(pause, PACE_STEP)):
                return  # closing: what was taken goes in now
            now = time.monotonic()
            self.pace.observe(now, _cpu_jiffies(), time.thread_time())
            if not self.pace.yielding(now):
                return

    def _run(self, cursor, jobs: list) -> None:
        """Write ``jobs`` in one transaction; if that fails, each on its own."""
        results = []
        try:
            cursor.execute("BEGIN TRANSACTION")
            results = self._write_group(cursor, [(data, batch) for data, batch, _ in jobs])
            if results is None:  # a line was not stored: each batch on its own, which says whose it was
                cursor.execute("ROLLBACK")
                cursor.execute("BEGIN TRANSACTION")
                results = [self._write(cursor, data, batch) for data, batch, _ in jobs]
            cursor.execute("COMMIT")
        except Exception:  # noqa: BLE001 - retried one by one below, each failure to its request
            cursor.execute("ROLLBACK")
            self.seq = max(self.seq, cursor.execute("SELECT coalesce(max(seq), 0) FROM log_lines").fetchall()[0][0])
            results = []
            for data, batch, _future in jobs:
                try:
                    results.append(self._write(cursor, data, batch))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                    results.append(exc)
        for (_, _, future), result in zip(jobs, results):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        with self.changed:
            self.changed.notify_all()

    def _write_group(self, cursor, jobs: list[tuple[bytes, str | None]]) -> list | None:
        """The batches of one commit (Rule 2): the named ones not seen before go through
        one inbox file and one statement, as one batch would (Rule 2: a statement costs
        about a millisecond or more to plan and to open, whatever its size). None when
        not every one of their lines was stored: then ``_write`` takes each batch on its
        own, which tells whose lines they were; nothing was changed here by then."""
        results: list = [None] * len(jobs)
        names = [batch for _, batch in jobs if batch is not None]
        seen = {batch: (accepted, lines) for batch, accepted, lines in cursor.execute(
            "SELECT batch, accepted, lines FROM log_batches WHERE batch IN (" + ", ".join(["?"] * len(names)) + ")",
            names).fetchall()} if names else {}  # one look-up in the key's index for all
        fresh = []  # (place in jobs, data, name, lines, places)
        for i, (data, batch) in enumerate(jobs):
            numbers, lines = _count_lines(data)
            if not lines:
                results[i] = (0, 0, 0, [])
            elif batch in seen:
                accepted, known = seen[batch]
                results[i] = (0, accepted, known - accepted, [])
            elif batch is not None:
                fresh.append((i, data, batch, lines, numbers))
        now = int(time.time() * 1_000_000)  # µs: bench/log_latency.py measures with it
        if fresh:
            parts = [d if d.endswith(b"\n") else d + b"\n" for _, d, _, _, _ in fresh]  # written one after the other
            with self._inbox_file(*parts) as path:
                inserted = cursor.execute(_INSERT_NAMED, {"geo": self.geo is not None, "path": path,
                                                          "seq": self.seq, "received": now}).fetchall()[0][0]
            if inserted != sum(f[3] for f in fresh):
                return None
            rows = ", ".join(["(?, ?, ?, make_timestamp(?::BIGINT))"] * len(fresh))
            cursor.execute(f"INSERT INTO log_batches VALUES {rows}",
                           [v for _, _, name, lines, _ in fresh for v in (name, lines, lines, now)])
            self.seq += sum(f[4] for f in fresh)  # the places of the joined data: every row's n is within them
            self.accepted += inserted
            for i, _, _, lines, _ in fresh:
                results[i] = (lines, 0, 0, [])
            self._prune(cursor, now)
        for i, (data, batch) in enumerate(jobs):
            if results[i] is None:  # a batch without a name (Rule 3)
                results[i] = self._write(cursor, data, batch)
            elif batch is not None and results[i][1]:
                self.duplicates += results[i][1]
        return results

    def _write(self, cursor, data: bytes, batch: str | None = None) -> tuple[int, int, int, list[str]]:
        numbers, lines = _count_lines(data)  # `seq` moves on as far as the batch has lines
        if not lines:
            return 0, 0, 0, []
        now = int(time.time() * 1_000_000)  # µs: bench/log_latency.py measures with it
        if batch is not None:  # Rule 3: a named batch
            seen = cursor.execute("SELECT accepted, lines FROM log_batches WHERE batch = ?", [batch]).fetchall()
            if seen:
                self.duplicates += seen[0][0]
                return 0, seen[0][0], seen[0][1] - seen[0][0], []
            with self._inbox_file(data) as path:
                inserted = cursor.execute(_INSERT_NAMED, {"geo": self.geo is not None, "path": path,
                                                          "seq": self.seq, "received": now}).fetchall()[0][0]
            cursor.execute("INSERT INTO log_batches VALUES (?, ?, ?, make_timestamp(?::BIGINT))",
                           [batch, inserted, lines, now])
            valid = inserted
            self._prune(cursor, now)
        else:
            with self._inbox_file(data) as path:
                cursor.execute(_STAGE, {"geo": self.geo is not None, "path": path})
            valid = cursor.execute("SELECT count(*) FROM incoming WHERE valid").fetchall()[0][0]
            inserted = cursor.execute(_INSERT_NEW, {"seq": self.seq, "received": now}).fetchall()[0][0] if valid else 0
            cursor.execute("DROP TABLE incoming")
        self.seq += numbers
        dupes = valid - inserted
        self.accepted += inserted
        self.duplicates += dupes
        invalid = lines - valid
        if not invalid:
            return inserted, dupes, 0, []
        return inserted, dupes, invalid, _problems([x for x in data.decode("utf-8", "replace").split("\n") if x])

    @contextmanager
    def _inbox_file(self, *parts: bytes):
        """The batch (its parts, whole lines each, one after the other: no joined copy)
        as a file in the inbox for DuckDB's JSON reader (Rule 2), removed once read (the
        transaction holds the rows). Not fsynced: the batch is acknowledged only after
        the commit, which DuckDB makes durable."""
        self._files += 1
        path = self.inbox / f"{os.getpid()}-{id(self):x}-{self._files}.jsonl"
        with open(path, "wb") as out:
            out.writelines(_utf8(part) for part in parts)
        try:
            yield str(path)
        finally:
            path.unlink(missing_ok=True)

    def _prune(self, cursor, now_us: int) -> None:
        """Forget batch names after ``BATCH_DAYS`` (Rule 3), at most once an hour."""
        if now_us - self._pruned < 3600e6:
            return
        self._pruned = now_us
        cursor.execute("DELETE FROM log_batches WHERE received < make_timestamp(?::BIGINT)",
                       [now_us - BATCH_DAYS * 86400 * 1_000_000])

    def _country(self, client: str | None) -> str | None:
        if client is None:
            return None
        known = self._countries.get(client, "")
        if known != "":
            return known
        try:
            country = self.geo.place(client).get("country")
        except (ValueError, AttributeError):
            country = None
        if len(self._countries) > 100_000:
            self._countries.clear()
        self._countries[client] = country
        return country

    def close(self) -> None:
        self._closing.set()
        self._jobs.put(None)
        self._writer.join(10)
        self.db.close()
        if self.path == ":memory:":
            shutil.rmtree(self.inbox, ignore_errors=True)

    # -- reading (Rule 5) --------------------------------------------------------------------
    def _rows(self, sql: str, params: list) -> list[dict]:
        cursor = self.db.cursor()
        try:
            result = cursor.execute(sql, params)
            names = [d[0] for d in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]
        finally:
            cursor.close()

    @staticmethod
    def _where(start: float, end: float, service: str | None, location: str | None,
               edge: str | None = None) -> tuple[str, list]:
        clauses = ["time >= make_timestamp(?::BIGINT)", "time < make_timestamp(?::BIGINT)",
                   "NOT starts_with(path, '/.well-known/owncdn/')"]  # Rule 6
        params: list = [int(start * 1_000_000), int(end * 1_000_000)]
        for column, value in (("service", service), ("location", location), ("edge", edge)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(clauses), params

    def stats(self, start: float, end: float, bucket: str = "1m", service: str | None = None,
              location: str | None = None, edge: str | None = None) -> list[dict]:
        """Per bucket: requests, bytes, origin bytes, hit ratio, status classes, TTFB p50/p95/p99."""
        seconds = bucket_seconds(bucket)
        where, params = self._where(start, end, service, location, edge)
        cached = ", ".join(f"'{c}'" for c in CACHED)
        sql = f"""
            SELECT time_bucket(to_seconds({seconds}), time) AS bucket,
                   count(*) AS requests,
                   coalesce(sum(bytes), 0) AS bytes,
                   coalesce(sum(origin_bytes), 0) AS origin_bytes,
                   count(*) FILTER (WHERE cache IN ({cached})) AS cached,
                   count(*) FILTER (WHERE status BETWEEN 100 AND 199) AS s1xx,
                   count(*) FILTER (WHERE status BETWEEN 200 AND 299) AS s2xx,
                   count(*) FILTER (WHERE status BETWEEN 300 AND 399) AS s3xx,
                   count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS s4xx,
                   count(*) FILTER (WHERE status >= 500) AS s5xx,
                   quantile_cont(ttfb_ms, 0.5) AS ttfb_p50,
                   quantile_cont(ttfb_ms, 0.95) AS ttfb_p95,
                   quantile_cont(ttfb_ms, 0.99) AS ttfb_p99
            FROM log_lines WHERE {where} GROUP BY 1 ORDER BY 1"""
        out = []
        for row in self._rows(sql, params):
            row["bucket"] = row["bucket"].isoformat() + "Z"
            row["hit_ratio"] = round(row["cached"] / row["requests"], 4) if row["requests"] else None
            row["origin_offload"] = round(1 - row["origin_bytes"] / row["bytes"], 4) if row["bytes"] else None
            row["status"] = {k: row.pop(f"s{k}") for k in ("1xx", "2xx", "3xx", "4xx", "5xx")}
            for key in ("ttfb_p50", "ttfb_p95", "ttfb_p99"):
                row[key] = round(row[key], 3) if row[key] is not None else None
            out.append(row)
        return out

    TOP = {"url": "host || path", "path": "path", "referrer": "referrer", "country": "country",
           "service": "service", "location": "location", "edge": "edge", "status": "CAST(status AS VARCHAR)",
           "client": "client", "user_agent": "user_agent"}

    def top(self, by: str, start: float, end: float, limit: int = 10, service: str | None = None,
            location: str | None = None) -> list[dict]:
        """The most requested values of ``by`` with their requests and bytes."""
        expr = self.TOP.get(by)
        if expr is None:
            raise ValueError(f"by must be one of {', '.join(self.TOP)}, got {by!r}")
        where, params = self._where(start, end, service, location)
        sql = (f"SELECT {expr} AS value, count(*) AS requests, coalesce(sum(bytes), 0) AS bytes "
               f"FROM log_lines WHERE {where} GROUP BY 1 ORDER BY requests DESC, value NULLS LAST LIMIT ?")
        return self._rows(sql, [*params, int(limit)])

    def tail(self, after: int = 0, service: str | None = None, limit: int = 500) -> tuple[list[dict], int]:
        """Lines stored after ``seq`` ``after`` (0: the newest ``limit``), oldest first, and the last seq."""
        clause, params = ("seq > ?", [after]) if after > 0 else ("seq > ?", [max(0, self.seq - limit)])
        if service:
            clause += " AND service = ?"
            params.append(service)
        rows = self._rows(f"SELECT * FROM log_lines WHERE {clause} ORDER BY seq LIMIT ?", [*params, int(limit)])
        last = rows[-1]["seq"] if rows else max(after, 0)
        for row in rows:
            row["time"] = row["time"].isoformat(timespec="milliseconds") + "Z"
            row["received"] = row["received"].isoformat() + "Z" if row["received"] else None
        return rows, last

    def wait_newer(self, seq: int, timeout: float) -> bool:
        """Block until a write made ``self.seq`` pass ``seq`` (or ``timeout``)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.seq > seq, timeout)

    def query(self, sql: str, limit: int = QUERY_ROWS, timeout: float = QUERY_SECONDS) -> dict:
        """A user's read-only query (Rule 5): ``{"columns", "rows", "truncated"}``."""
        cursor = self.db.cursor()
        try:
            try:
                statements = cursor.extract_statements(sql)
            except duckdb.Error as exc:
                raise QueryRefused(f"the query does not parse: {exc}") from None
            if len(statements) != 1:
                raise QueryRefused(f"send exactly one statement, got {len(statements)}")
            if statements[0].type != duckdb.StatementType.SELECT:
                raise QueryRefused(f"only SELECT (or WITH ... SELECT) is allowed, got {statements[0].type.name}")
            timer = threading.Timer(timeout, cursor.interrupt)
            timer.start()
            try:
                result = cursor.execute(sql)
                rows = result.fetchmany(limit + 1)
            except duckdb.InterruptException:
                raise QueryRefused(f"the query ran longer than {timeout:g}s and was stopped") from None
            except duckdb.Error as exc:
                raise QueryRefused(str(exc).splitlines()[0]) from None
            finally:
                timer.cancel()
            columns = [d[0] for d in result.description]
            return {"columns": columns, "rows": [list(_plain(v) for v in r) for r in rows[:limit]],
                    "truncated": len(rows) > limit}
        finally:
            cursor.close()


def _count_lines(data: bytes) -> tuple[int, int]:
    """(places, non-empty lines) of a batch: the reader skips empty lines. numpy: a
    tenth of the time of ``bytes.count`` and ``in``, which cost about 1 us a line."""
    if not data:
        return 0, 0
    places, empty, last = int(data[-1] != 10), 0, -1  # last: where the previous line ended
    for at in range(0, len(data), 16 << 20):  # in slices: a bool per byte of a 256 MB batch would be a lot
        ends = numpy.flatnonzero(numpy.frombuffer(data, numpy.uint8, min(16 << 20, len(data) - at), at) == 10) + at
        if len(ends):
            places += len(ends)
            empty += int(numpy.count_nonzero(numpy.diff(ends) == 1)) + int(ends[0] == last + 1)
            last = int(ends[-1])
    return places, places - empty


def _cpu_jiffies() -> tuple[int, int] | None:
    """(idle, all) jiffies of the machine (``core/logs/pace.py``), None without ``/proc/stat``."""
    try:
        with open("/proc/stat", "rb") as f:
            return idle_and_total(f.read(4096).decode("ascii", "replace"))
    except OSError:
        return None


def _utf8(data: bytes) -> bytes:
    """``data``, or with U+FFFD for bytes that are not UTF-8: the JSON reader would drop
    such a line, this way it is kept. ASCII (what edges send) is checked without a copy."""
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode()
    return data


def _split_at_repeat(jobs: list) -> tuple[list, list]:
    """``jobs`` up to the first one whose batch name an earlier one has, and the rest:
    a batch sent again while the first is still queued waits for the next commit, which
    then knows it (Rule 3)."""
    names: set[str] = set()
    for i, (_data, batch, _future) in enumerate(jobs):
        if batch is not None:
            if batch in names:
                return jobs[:i], jobs[i:]
            names.add(batch)
    return jobs, []


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _problems(lines: list[str], most: int = 5) -> list[str]:
    """Why lines were not stored: the first ``most``, checked by ``core.logs.schema``
    (only for batches that had such lines)."""
    problems = []
    for n, line in enumerate(lines, 1):
        try:
            normalize(orjson.loads(line))
        except (orjson.JSONDecodeError, ValueError) as exc:
            problems.append(f"line {n}: {exc}")
            if len(problems) >= most:
                break
    return problems


def _plain(value):
    """A DuckDB value as JSON can carry it."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def open_analytics(state_dir: Path, geoip: str | None = None, yield_for: float = YIELD_FOR) -> Analytics:
    """``<state_dir>/analytics.duckdb`` with the GeoIP database the DNS would use, if any;
    ``yield_for``: Rule 7."""
    from owncdn.dns.geodefault import open_geo

    try:
        geo = open_geo(geoip)
    except (OSError, ValueError):
        geo = None
    return Analytics(Path(state_dir) / "analytics.duckdb", geo, yield_for=yield_for)
