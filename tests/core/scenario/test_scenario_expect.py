"""Expectations against what the edge answered: rows of (expect, observed, failures)."""

import pytest

from owncdn.core.scenario import Expect, Observed, check_expect, step_failure

SEEN = Observed(
    status=200,
    headers={"x-cache": "HIT", "age": "0", "content-type": "text/html", "via": "1.1 edge-1"},
    body="<h1>hi</h1>".encode(),
    origin_requests=1,
    origin_headers={"host": "origin.test", "x-auth": "t"},
)


def expect(**fields) -> Expect:
    return Expect.model_validate(fields)


ROWS = [
    ({}, []),
    ({"status": 200, "x-cache": "HIT", "body": "<h1>hi</h1>", "body_contains": "hi", "origin_requests": 1}, []),
    ({"status": 404}, ["expected status 404, got 200"]),
    ({"x-cache": "MISS"}, ["expected X-Cache MISS, got HIT"]),
    # headers: case-insensitive names, exact values, null for absent
    ({"headers": {"Content-Type": "text/html", "AGE": "0", "server": None}}, []),
    ({"headers": {"age": 0}}, []),
    ({"headers": {"age": "5"}}, ['expected header age: "5", got "0"']),
    ({"headers": {"etag": '"v1"'}}, ['expected header etag: "\\"v1\\"", got none']),
    ({"headers": {"via": None}}, ['expected no header via, got "1.1 edge-1"']),
    ({"headers": {"age": "1", "etag": "x"}}, ['expected header age: "1", got "0"; expected header etag: "x", got none']),
    # bodies
    ({"body": "<h1>bye</h1>"}, ['expected body "<h1>bye</h1>", got "<h1>hi</h1>"']),
    ({"body_contains": "bye"}, ['expected the body to contain "bye", got "<h1>hi</h1>"']),
    # the origin
    ({"origin_requests": 2}, ["expected 2 origin requests so far, got 1"]),
    ({"origin_requests": 1}, []),
    ({"origin_headers": {"X-Auth": "t", "x-debug": None}}, []),
    ({"origin_headers": {"x-auth": "u"}}, ['expected origin request header x-auth: "u", got "t"']),
    # several at once, in a fixed order
    ({"x-cache": "MISS", "status": 304}, ["expected status 304, got 200", "expected X-Cache MISS, got HIT"]),
]


@pytest.mark.parametrize(("fields", "failures"), ROWS)
def test_check_expect(fields, failures):
    assert check_expect(expect(**fields), SEEN) == failures


def test_no_x_cache_header_and_no_origin_request():
    seen = Observed(421, {}, b"", 0, None)
    assert check_expect(expect(**{"x-cache": "HIT"}), seen) == ["expected X-Cache HIT, got no X-Cache header"]
    assert check_expect(expect(origin_headers={"a": "b"}), seen) == [
        "expected origin request headers, but the origin received no request"]


def test_long_bodies_are_cut_in_messages():
    seen = Observed(200, {}, b"x" * 500)
    (message,) = check_expect(expect(body="y"), seen)
    assert message == f'expected body "y", got "{"x" * 60}..."'


def test_step_failure():
    assert step_failure(3, ["expected X-Cache HIT, got MISS"]) == "step 3: expected X-Cache HIT, got MISS"
    assert step_failure(1, ["a", "b"]) == "step 1: a; b"


def test_non_utf8_bodies_do_not_crash():
    assert check_expect(expect(body_contains="ok"), Observed(200, {}, b"\xffok")) == []
