"""W3C Trace Context (Recommendation, section 3.2 "Traceparent Header"), as tables."""

import pytest

from owncdn.core.http.tracecontext import continue_trace, new_ids, parse_traceparent

T = "4bf92f3577b34da6a3ce929d0e0e4736"
P = "00f067aa0ba902b7"
NEW_T = "a" * 32
NEW_P = "b" * 16


@pytest.mark.parametrize("value, parsed", [
    # the spec's example
    (f"00-{T}-{P}-01", ("00", T, P, "01")),
    (f"00-{T}-{P}-00", ("00", T, P, "00")),
    (f"  00-{T}-{P}-01\t", ("00", T, P, "01")),          # optional whitespace around the value
    # 3.2.2.1 version: 2 lowercase hex digits, ff is invalid
    (f"ff-{T}-{P}-01", None),
    (f"0g-{T}-{P}-01", None),
    # 3.2.2.3 trace-id: 32 lowercase hex, all zeros invalid
    (f"00-{'0' * 32}-{P}-01", None),
    (f"00-{T.upper()}-{P}-01", None),
    (f"00-{T[:-1]}-{P}-01", None),
    # 3.2.2.4 parent-id: 16 lowercase hex, all zeros invalid
    (f"00-{T}-{'0' * 16}-01", None),
    (f"00-{T}-{P.upper()}-01", None),
    # 3.2.2.5 trace-flags: 2 hex digits
    (f"00-{T}-{P}-0x", None),
    (f"00-{T}-{P}-1", None),
    # version 00 is exactly 55 characters
    (f"00-{T}-{P}-01-extra", None),
    (f"00-{T}-{P}-010", None),
    # 3.2.4 a future version may carry more after a dash; its first parts are read
    (f"cc-{T}-{P}-01-what-the-future-holds", ("cc", T, P, "01")),
    (f"cc-{T}-{P}-01", ("cc", T, P, "01")),
    (f"cc-{T}-{P}-01x", None),
    # wrong separators, empty, garbage
    (f"00_{T}_{P}_01", None),
    ("", None),
    (None, None),
    ("not a traceparent at all, but long enough to reach fifty-five", None),
    # several traceparent fields in one request are invalid
    ([f"00-{T}-{P}-01", f"00-{T}-{P}-01"], None),
    ([f"00-{T}-{P}-01"], ("00", T, P, "01")),
])
def test_parse(value, parsed):
    assert parse_traceparent(value) == parsed


@pytest.mark.parametrize("incoming, header, restarted", [
    # a valid field is continued: its trace id, the edge's parent id, version 00
    (f"00-{T}-{P}-01", f"00-{T}-{NEW_P}-01", False),
    (f"00-{T}-{P}-00", f"00-{T}-{NEW_P}-00", False),
    # only the sampled flag survives (version 00 defines no other bit)
    (f"00-{T}-{P}-ff", f"00-{T}-{NEW_P}-01", False),
    (f"00-{T}-{P}-fe", f"00-{T}-{NEW_P}-00", False),
    # a future version is sent on as 00
    (f"cc-{T}-{P}-01-more", f"00-{T}-{NEW_P}-01", False),
    # missing or invalid: a new trace, recorded (flags 01)
    (None, f"00-{NEW_T}-{NEW_P}-01", True),
    (f"ff-{T}-{P}-01", f"00-{NEW_T}-{NEW_P}-01", True),
    (f"00-{'0' * 32}-{P}-01", f"00-{NEW_T}-{NEW_P}-01", True),
])
def test_continue(incoming, header, restarted):
    trace = continue_trace(incoming, NEW_T, NEW_P)
    assert (trace.header, trace.restarted) == (header, restarted)
    assert parse_traceparent(trace.header) is not None


def test_new_ids_are_valid_and_fresh():
    ids = {new_ids() for _ in range(100)}
    assert len(ids) == 100
    for trace_id, parent_id in ids:
        assert parse_traceparent(f"00-{trace_id}-{parent_id}-01") == ("00", trace_id, parent_id, "01")
