"""Request id and W3C traceparent: from the visitor through the edge to the origin and the log."""

import json

from owncdn.core.http.tracecontext import parse_traceparent
from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin

T = "4bf92f3577b34da6a3ce929d0e0e4736"
P = "00f067aa0ba902b7"


def log_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_valid_traceparent_is_continued_to_the_origin_and_logged(tmp_path):
    origin = FakeOrigin()
    origin.route("/page", body=b"ok", headers={"Cache-Control": "max-age=60"})
    log = tmp_path / "access.log"
    async with EdgeUnderTest(origin, access_log=str(log)) as t:
        miss = await t.get("/page", headers={"traceparent": f"00-{T}-{P}-01", "tracestate": "v=1"})
        hit = await t.get("/page", headers={"traceparent": f"00-{T}-{P}-01"})
        plain_hit = await t.get("/page")
    assert (miss.headers["x-cache"], hit.headers["x-cache"], plain_hit.headers["x-cache"]) == ("MISS", "HIT", "HIT")
    seen = origin.requests[0].headers
    version, trace_id, parent_id, flags = parse_traceparent(seen["traceparent"])
    assert (version, trace_id, flags) == ("00", T, "01")
    assert parent_id != P  # the edge is a span of its own
    assert seen["tracestate"] == "v=1"
    assert seen["x-request-id"] == miss.headers["x-request-id"]
    lines = log_lines(log)
    assert [line["request_id"] for line in lines] == [r.headers["x-request-id"] for r in (miss, hit, plain_hit)]
    assert lines[0]["traceparent"] == seen["traceparent"]
    assert parse_traceparent(lines[1]["traceparent"])[1] == T  # a hit logs the visitor's trace
    assert lines[2]["traceparent"] is None  # nothing computed for a plain hit


async def test_an_invalid_traceparent_is_replaced_and_tracestate_dropped(tmp_path):
    origin = FakeOrigin()
    origin.route("/", body=b"ok")
    log = tmp_path / "access.log"
    async with EdgeUnderTest(origin, access_log=str(log)) as t:
        await t.get("/", headers={"traceparent": f"00-{T.upper()}-{P}-01", "tracestate": "v=1"})
        await t.get("/", method="POST", headers={"content-length": "0"})
    first, second = (r.headers for r in origin.requests)
    assert parse_traceparent(first["traceparent"])[1] != T.upper().lower()
    assert "tracestate" not in first
    assert parse_traceparent(second["traceparent"]) is not None  # a pass starts a trace too
    assert [line["traceparent"] for line in log_lines(log)] == [first["traceparent"], second["traceparent"]]
