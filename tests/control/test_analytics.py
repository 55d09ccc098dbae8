"""The analytics store and its API: ingest with de-duplication, stats buckets from a
known set of lines, top lists, tail, and the read-only query endpoint (admin only)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import zstandard

from owncdn.client import Client
from owncdn.client.errors import ApiError
from owncdn.control.analytics import Analytics, QueryRefused, _count_lines
from owncdn.control.api import ApiServer, create_app
from owncdn.control.store import Store, sqlite_url

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()


def line(n: int, at: float, *, service: str = "www", status: int = 200, cache: str = "HIT", sent: int = 100,
         origin: int = 0, ttfb: float | None = 1.0, path: str = "/", referrer: str | None = None,
         location: str = "fra", client: str = "192.0.2.1") -> dict:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"schema_version": 1, "time": stamp, "request_id": f"r-{n}", "service": service, "client": client,
            "scheme": "http", "protocol": "1.1", "method": "GET", "host": f"{service}.test", "path": path,
            "status": status, "bytes": sent, "cache": cache, "edge": f"edge-{location}", "location": location,
            "user_agent": "t", "referrer": referrer, "range": None, "ttfb_ms": ttfb, "duration_ms": 2.0,
            "origin_ms": None, "origin_bytes": origin}


def jsonl(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.fixture
def analytics(tmp_path):
    a = Analytics(tmp_path / "analytics.duckdb")
    yield a
    a.close()


# Lines: (second after T0, status, cache, bytes sent, origin bytes, ttfb ms)
LINES = [
    (0, 200, "MISS", 1000, 1000, 50.0),
    (10, 200, "HIT", 1000, 0, 1.0),
    (20, 200, "HIT", 1000, 0, 2.0),
    (30, 404, "MISS", 10, 10, 40.0),
    (70, 200, "STALE", 500, 0, 3.0),
    (80, 503, "PASS", 20, 20, None),
    (3700, 304, "REVALIDATED", 0, 0, 5.0),
]


@pytest.mark.parametrize("bucket,expected", [
    ("1m", [
        # bucket, requests, bytes, origin_bytes, cached, 2xx, 3xx, 4xx, 5xx, hit_ratio, offload, p50
        ("2026-11-20T10:00:00Z", 4, 3010, 1010, 2, 3, 0, 1, 0, 0.5, 0.6645, 21.0),
        ("2026-11-20T10:01:00Z", 2, 520, 20, 1, 1, 0, 0, 1, 0.5, 0.9615, 3.0),
        ("2026-11-20T11:01:00Z", 1, 0, 0, 1, 0, 1, 0, 0, 1.0, None, 5.0),
    ]),
    ("1h", [
        ("2026-11-20T10:00:00Z", 6, 3530, 1030, 3, 4, 0, 1, 1, 0.5, 0.7082, 3.0),
        ("2026-11-20T11:00:00Z", 1, 0, 0, 1, 0, 1, 0, 0, 1.0, None, 5.0),
    ]),
    ("1d", [
        ("2026-11-20T00:00:00Z", 7, 3530, 1030, 4, 4, 1, 1, 1, 0.5714, 0.7082, 4.0),
    ]),
])
def test_stats_buckets_from_a_known_set_of_lines(analytics, bucket, expected):
    records = [line(i, T0 + s, status=st, cache=c, sent=b, origin=o, ttfb=t)
               for i, (s, st, c, b, o, t) in enumerate(LINES)]
    assert analytics.ingest(records).result() == (7, 0, 0, [])
    got = analytics.stats(T0 - 60, T0 + 86400, bucket, service="www")
    assert [(r["bucket"], r["requests"], r["bytes"], r["origin_bytes"], r["cached"], r["status"]["2xx"],
             r["status"]["3xx"], r["status"]["4xx"], r["status"]["5xx"], r["hit_ratio"], r["origin_offload"],
             r["ttfb_p50"]) for r in got] == expected


def test_stats_filter_by_service_location_and_time(analytics):
    analytics.ingest([line(1, T0, service="a", location="fra"), line(2, T0, service="b", location="fra"),
                      line(3, T0, service="a", location="nyc"), line(4, T0 + 7200, service="a")]).result()
    count = lambda **kw: sum(r["requests"] for r in analytics.stats(T0 - 1, T0 + 60, "1m", **kw))  # noqa: E731
    assert (count(), count(service="a"), count(location="fra"), count(service="a", location="nyc")) == (3, 2, 2, 1)


def test_top_urls_referrers_and_countries(analytics):
    analytics.ingest([line(1, T0, path="/a", referrer="https://r.test/"), line(2, T0, path="/a"),
                      line(3, T0, path="/b", referrer="https://r.test/", sent=5)]).result()
    assert analytics.top("url", T0 - 1, T0 + 1) == [{"value": "www.test/a", "requests": 2, "bytes": 200},
                                                     {"value": "www.test/b", "requests": 1, "bytes": 5}]
    assert analytics.top("referrer", T0 - 1, T0 + 1, limit=1) == [{"value": "https://r.test/", "requests": 2, "bytes": 105}]
    assert analytics.top("country", T0 - 1, T0 + 1) == [{"value": None, "requests": 3, "bytes": 205}]  # no GeoIP here
    with pytest.raises(ValueError, match="by must be one of"):
        analytics.top("password", T0, T0 + 1)


def test_country_comes_from_the_geo_database_at_ingest(tmp_path):
    class Geo:
        def place(self, address: str) -> dict:
            return {"country": "DE"} if address.startswith("192.0.2.") else {}

    a = Analytics(tmp_path / "geo.duckdb", Geo())
    try:
        a.ingest([line(1, T0, client="192.0.2.7"), line(2, T0, client="198.51.100.1")]).result()
        assert a.query("SELECT client, country FROM logs ORDER BY client")["rows"] == [
            ["192.0.2.7", "DE"], ["198.51.100.1", None]]
    finally:
        a.close()


def test_tail_returns_the_newest_lines_and_follows(analytics):
    analytics.ingest([line(i, T0 + i) for i in range(5)]).result()
    lines, last = analytics.tail(limit=2)
    assert [x["request_id"] for x in lines] == ["r-3", "r-4"]
    analytics.ingest([line(9, T0 + 9, service="other"), line(10, T0 + 10)]).result()
    lines, last = analytics.tail(after=last, service="www")
    assert [x["request_id"] for x in lines] == ["r-10"]


# -- through the API ---------------------------------------------------------------------
@pytest.fixture
def api(tmp_path, analytics):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    tokens = {name: store.create_token(name, scopes)[1]
              for name, scopes in [("admin", {"admin"}), ("read", {"read"}), ("bootstrap", {"node"})]}
    with ApiServer(create_app(store, analytics=analytics)) as server:
        node = Client(server.url, tokens["bootstrap"]).register_node("e1", "edge", "fra", "production", "192.0.2.1")
        tokens["node"] = node["token"]
        clients = {name: Client(server.url, token) for name, token in tokens.items()}
        yield clients
        for c in clients.values():
            c.close()
    store.close()


def test_a_resent_batch_adds_no_duplicates(api, analytics):
    batch = jsonl([line(i, T0 + i) for i in range(10)])
    assert api["node"].send_logs(batch) == {"accepted": 10, "duplicates": 0, "invalid": 0, "problems": []}
    again = api["node"].send_logs(batch + jsonl([line(10, T0 + 10)]))  # resent after a lost ack, plus one new
    assert (again["accepted"], again["duplicates"]) == (1, 10)
    assert analytics.query("SELECT count(*), count(DISTINCT request_id) FROM logs")["rows"] == [[11, 11]]


def test_invalid_lines_are_counted_and_the_rest_kept(api, analytics):
    bad = line(2, T0)
    del bad["status"]
    got = api["node"].send_logs(jsonl([line(1, T0), bad]) + b"not json\n")
    assert (got["accepted"], got["invalid"]) == (1, 2) and "status" in got["problems"][0]


def test_log_batches_need_a_registered_nodes_token(api):
    for name, status in (("bootstrap", 403), ("read", 403)):
        with pytest.raises(ApiError) as err:
            api[name].send_logs(jsonl([line(1, T0)]))
        assert err.value.status == status


def test_stats_and_top_through_the_api(api):
    api["node"].send_logs(jsonl([line(i, T0 + i, path=f"/{i % 2}") for i in range(4)]))
    stats = api["read"].stats(start=str(T0 - 60), end=str(T0 + 60), bucket="1m")
    assert stats["total"]["requests"] == 4 and len(stats["buckets"]) == 1
    assert [t["value"] for t in api["read"].top("path", start=str(T0 - 60), end=str(T0 + 60))] == ["/0", "/1"]
    with pytest.raises(ApiError) as err:
        api["read"].stats(bucket="5m")
    assert err.value.status == 422


@pytest.mark.parametrize("sql", [
    "DELETE FROM logs",
    "DROP VIEW logs",
    "INSERT INTO log_lines SELECT * FROM log_lines",
    "UPDATE log_lines SET status = 1",
    "CREATE TABLE x AS SELECT 1",
    "COPY log_lines TO 'out.csv'",
    "ATTACH 'other.duckdb'",
    "SET enable_external_access = true",
    "SELECT 1; DELETE FROM logs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "PRAGMA database_list",
])
def test_the_query_endpoint_refuses_anything_but_a_single_select(api, sql):
    api["node"].send_logs(jsonl([line(1, T0)]))
    with pytest.raises(ApiError) as err:
        api["admin"].logs_query(sql)
    assert err.value.status == 400 and err.value.code == "query_refused"
    assert api["admin"].logs_query("SELECT count(*) AS n FROM logs") == {"columns": ["n"], "rows": [[1]],
                                                                          "truncated": False}


def test_the_query_endpoint_needs_admin_and_limits_rows(api):
    api["node"].send_logs(jsonl([line(i, T0 + i) for i in range(5)]))
    for name in ("read", "node"):
        with pytest.raises(ApiError) as err:
            api[name].logs_query("SELECT * FROM logs")
        assert err.value.status == 403
    got = api["admin"].logs_query("WITH x AS (SELECT request_id FROM logs) SELECT * FROM x ORDER BY 1", limit=3)
    assert got["rows"] == [["r-0"], ["r-1"], ["r-2"]] and got["truncated"]


def test_tail_through_the_api_waits_for_new_lines(api):
    first = api["read"].logs_tail()
    assert first == {"lines": [], "next": 0}
    api["node"].send_logs(jsonl([line(1, T0)]))
    got = api["read"].logs_tail(after=first["next"], wait=5)
    assert [x["request_id"] for x in got["lines"]] == ["r-1"] and got["next"] == 1


def test_gzip_and_plain_bodies(api, analytics):
    url = api["node"].base_url
    token = api["node"]._http.headers["Authorization"]
    r = httpx.post(f"{url}/v1/logs", content=jsonl([line(1, T0)]), headers={"Authorization": token})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = httpx.post(f"{url}/v1/logs", content=gzip.compress(jsonl([line(2, T0)])),
                   headers={"Authorization": token, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = httpx.post(f"{url}/v1/logs", content=b"\x1f\x8bnot gzip", headers={"Authorization": token, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    r = httpx.post(f"{url}/v1/logs", content=zstandard.ZstdCompressor(level=1).compress(jsonl([line(3, T0)])),
                   headers={"Authorization": token, "Content-Encoding": "zstd"})  # what edges send
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = httpx.post(f"{url}/v1/logs", content=b"not zstd", headers={"Authorization": token, "Content-Encoding": "zstd"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_zstd"


def test_a_named_batch_sent_again_is_all_duplicates(api, analytics):
    url = api["node"].base_url
    headers = {"Authorization": api["node"]._http.headers["Authorization"], "X-Log-Segment": "1795168800000-000001"}
    bad = line(9, T0)
    del bad["status"]
    body = jsonl([line(i, T0 + i) for i in range(4)] + [bad])
    first = httpx.post(f"{url}/v1/logs", content=body, headers=headers).json()
    assert (first["accepted"], first["duplicates"], first["invalid"]) == (4, 0, 1)
    again = httpx.post(f"{url}/v1/logs", content=body, headers=headers).json()  # the ack was lost: sent again
    assert (again["accepted"], again["duplicates"], again["invalid"]) == (0, 4, 1)
    other = httpx.post(f"{url}/v1/logs", content=jsonl([line(7, T0)]),
                       headers={**headers, "X-Log-Segment": "1795168800000-000002"}).json()
    assert other["accepted"] == 1
    assert analytics.query("SELECT count(*), count(DISTINCT request_id) FROM logs")["rows"] == [[5, 5]]


def test_lines_repeated_inside_a_batch_are_stored_once(analytics):
    assert analytics.ingest([line(1, T0), line(2, T0), line(1, T0)]).result()[:3] == (2, 1, 0)
    assert analytics.ingest([line(2, T0), line(3, T0 + 1)]).result()[:3] == (1, 1, 0)


def test_a_named_batch_goes_through_the_inbox_and_leaves_nothing_there(analytics):
    wrong_type = orjson.dumps({**line(3, T0), "status": "ok"}) + b"\n"
    data = (jsonl([line(1, T0)]) + b"\n" + wrong_type + b"[1, 2]\n" + jsonl([line(2, T0 + 1)])[:-1]
            + b"\n" + jsonl([line(4, T0 + 2)]).replace(b'"t"', b'"t\xff"'))  # empty line, invalid UTF-8
    accepted, duplicates, invalid, problems = analytics.ingest_lines(data, "edge-1/0001").result()
    assert (accepted, duplicates, invalid) == (3, 0, 2) and "status" in problems[0]
    assert analytics.query("SELECT request_id, user_agent FROM logs ORDER BY request_id")["rows"] == [
        ["r-1", "t"], ["r-2", "t"], ["r-4", "t\ufffd"]]
    assert list(analytics.inbox.iterdir()) == []
    assert analytics.ingest_lines(data, "edge-1/0001").result()[:3] == (0, 3, 2)  # sent again


def test_seq_follows_the_order_of_arrival_across_batches(analytics):
    analytics.ingest_lines(jsonl([line(i, T0 + i) for i in range(3)]), "e/1").result()
    analytics.ingest_lines(jsonl([line(i, T0) for i in range(3, 5)]), "e/2").result()
    rows, last = analytics.tail(0, limit=10)
    assert [r["request_id"] for r in rows] == ["r-0", "r-1", "r-2", "r-3", "r-4"] and last == analytics.seq


def test_queries_read_no_files_not_even_the_inbox_siblings(analytics, tmp_path):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    for sql in (f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')", "SELECT * FROM read_text('/etc/hostname')"):
        with pytest.raises(QueryRefused):
            analytics.query(sql)


@pytest.mark.parametrize("data,expected", [
    (b"", (0, 0)), (b"a", (1, 1)), (b"a\n", (1, 1)), (b"\n", (1, 0)), (b"a\n\nb", (3, 2)),
    (b"\n\na\n", (3, 1)), (b"a\nb\n", (2, 2)),
])
def test_lines_are_counted_as_the_reader_sees_them(data, expected):
    assert _count_lines(data) == expected


def test_batches_that_arrive_together_share_a_commit_and_keep_their_own_counts(tmp_path):
    # the next commit waits: what arrives meanwhile shares it
    a = Analytics(tmp_path / "group.duckdb", commit_every=0.5)
    try:
        a.ingest_lines(jsonl([line(0, T0)]), "e/0").result()
        futures = [a.ingest_lines(jsonl([line(1, T0), line(2, T0 + 1)]), "e/1"),
                   a.ingest_lines(jsonl([line(3, T0 + 2)]) + b"not json\n", "f/1"),
                   a.ingest_lines(jsonl([line(1, T0), line(2, T0 + 1)]), "e/1"),  # again, before the first was stored
                   a.ingest_lines(jsonl([line(1, T0), line(4, T0 + 3)]))]  # no name: by request_id
        results = [f.result() for f in futures]
        assert [r[:3] for r in results] == [(2, 0, 0), (1, 0, 1), (0, 2, 0), (1, 1, 0)]
        assert "line 2" in results[1][3][0]
        rows, last = a.tail(0, limit=10)
        assert sorted(r["request_id"] for r in rows) == ["r-0", "r-1", "r-2", "r-3", "r-4"] and last == a.seq
    finally:
        a.close()


def test_named_batches_of_one_commit_are_read_together_in_order(tmp_path):
    a = Analytics(tmp_path / "group.duckdb", commit_every=0.5)
    try:
        a.ingest_lines(jsonl([line(0, T0)]), "e/0").result()
        futures = [a.ingest_lines(jsonl([line(n, T0 + n) for n in range(k, k + 3)])[:-1], f"e/{k}")  # no last newline
                   for k in (1, 4, 7)]
        assert [f.result() for f in futures] == [(3, 0, 0, [])] * 3
        assert a.ingest_lines(jsonl([line(4, T0 + 4)]), "e/4").result()[:3] == (0, 3, 0)
        rows, _ = a.tail(0, limit=20)
        assert [r["request_id"] for r in rows] == [f"r-{n}" for n in range(10)]
        assert len({r["seq"] for r in rows}) == 10
    finally:
        a.close()


class _PaceRecorder:
    """Stands in for the writer's IngestPace (core/logs/pace.py): notes what it is told."""

    def __init__(self) -> None:
        self.observed: list = []
        self.gaps: list = []

    def observe(self, now, jiffies, writer_cpu) -> None:
        self.observed.append((now, jiffies, writer_cpu))

    def gap(self, now, cpu, every) -> float:
        self.gaps.append((cpu, every))
        return every


def test_the_writer_reads_the_machine_before_each_commit_and_asks_the_pace_when_to_go_on(tmp_path):
    a = Analytics(tmp_path / "analytics.duckdb", yield_for=0.0)
    try:
        assert a.pace.most == 0.0  # Rule 7: yield_for 0, never
        a.pace = recorder = _PaceRecorder()
        assert a.ingest_lines(jsonl([line(1, T0)]), "edge-a/1").result()[0] == 1
        assert a.ingest_lines(jsonl([line(2, T0)]), "edge-a/2").result()[0] == 1
        assert len(recorder.observed) == 2 and len(recorder.gaps) == 2
        _, jiffies, cpu = recorder.observed[0]
        assert jiffies is None or (len(jiffies) == 2 and jiffies[0] <= jiffies[1])  # /proc/stat (idle, all)
        assert cpu >= 0 and all(c >= 0 and every == a.commit_every for c, every in recorder.gaps)
    finally:
        a.close()


class _BusyThenQuiet(_PaceRecorder):
    """Says the machine is busy (a 30 s gap after each commit) until it has been asked
    `busy_looks` times while the writer waits."""

    def __init__(self, busy_looks: int) -> None:
        super().__init__()
        self.busy_looks = busy_looks

    def gap(self, now, cpu, every) -> float:
        self.gaps.append((cpu, every))
        return 30.0

    def yielding(self, now) -> bool:
        self.busy_looks -= 1
        return self.busy_looks >= 0


def test_a_yielding_writer_goes_on_as_soon_as_the_machine_is_quiet(tmp_path):
    a = Analytics(tmp_path / "analytics.duckdb")
    try:
        a.pace = pace = _BusyThenQuiet(busy_looks=2)
        assert a.ingest_lines(jsonl([line(1, T0)]), "edge-a/1").result()[0] == 1
        # the next batch waits while the pace says busy (two looks), then goes in, long before 30 s
        assert a.ingest_lines(jsonl([line(2, T0)]), "edge-a/2").result(timeout=20)[0] == 1
        assert len(pace.observed) == 2 + 3  # one reading per commit, three while waiting
    finally:
        a.close()
