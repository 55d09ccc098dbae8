"""Tests for owncdn.core.http.cachekey and the target helpers it uses."""

from __future__ import annotations

import pytest

from owncdn.core.http.cachekey import KeyPolicy, cache_key, uri_key
from owncdn.core.http.headers import Headers

NO_HEADERS = Headers()


@pytest.mark.parametrize("host, target, policy, expected", [
    # RFC 9111 §2: the primary cache key "consists of the request method and target URI"
    ("example.com", "/a/b?x=1", KeyPolicy(), "blog example.com/a/b?x=1"),
    # RFC 9110 §4.2.3: the host is case-insensitive; the default port is not significant
    ("Example.COM:443", "/a", KeyPolicy(), "blog example.com/a"),
    ("example.com.", "/a", KeyPolicy(), "blog example.com/a"),
    ("[::1]:8080", "/a", KeyPolicy(), "blog [::1]/a"),
    # the path is kept exactly: origins may distinguish these
    ("h", "/A%2Fb", KeyPolicy(), "blog h/A%2Fb"),
    ("h", "/a/../b", KeyPolicy(), "blog h/a/../b"),
    ("h", "/a%2fb", KeyPolicy(), "blog h/a%2fb"),
    # absolute-form targets (RFC 9112 §3.2.2) reduce to path and query
    ("h", "http://h/p?q=1", KeyPolicy(), "blog h/p?q=1"),
    ("h", "/p#frag", KeyPolicy(), "blog h/p"),
    ("h", "/p?", KeyPolicy(), "blog h/p"),
    # query policy
    ("h", "/p?b=2&a=1&a=0", KeyPolicy(query="keep"), "blog h/p?b=2&a=1&a=0"),
    ("h", "/p?b=2&a=1&a=0", KeyPolicy(query="sort"), "blog h/p?a=1&a=0&b=2"),
    ("h", "/p?b=2&a=1", KeyPolicy(query="ignore"), "blog h/p"),
    ("h", "/p?utm_source=x&id=7", KeyPolicy(exclude=("utm_source",)), "blog h/p?id=7"),
    ("h", "/p?utm_source=x", KeyPolicy(exclude=("utm_source",)), "blog h/p"),
    ("h", "/p?v=1&cb=9&id=7", KeyPolicy(include=("id", "v")), "blog h/p?v=1&id=7"),
    ("h", "/p?v=1&cb=9&id=7", KeyPolicy(query="sort", include=("v", "id")), "blog h/p?id=7&v=1"),
    ("h", "/p?a&b=", KeyPolicy(query="sort"), "blog h/p?a&b="),
])
def test_uri_key(host, target, policy, expected):
    assert uri_key("blog", host, target, policy) == expected
    # the primary key adds the scheme (Rule 1); uri_key has none (Rule 4)
    assert cache_key("blog", host, target, NO_HEADERS, policy) == expected.replace(" ", " http://", 1)


@pytest.mark.parametrize("cookies, expected", [
    ([("Cookie", "lang=de; session=abc")], "blog http://h/p cookie:lang=de"),
    ([("Cookie", "session=abc"), ("Cookie", "lang=fr")], "blog http://h/p cookie:lang=fr"),
    ([], "blog http://h/p cookie:lang"),  # absent differs from empty
    ([("Cookie", "lang=")], "blog http://h/p cookie:lang="),
])
def test_cookie_in_key(cookies, expected):
    policy = KeyPolicy(cookies=("lang",))
    assert cache_key("blog", "h", "/p", Headers(cookies), policy) == expected
    # uri_key ignores cookies: invalidation covers every variant
    assert uri_key("blog", "h", "/p", policy) == "blog h/p"


def test_schemes_do_not_share_keys():
    assert cache_key("blog", "h", "/p", NO_HEADERS, KeyPolicy(), "https") == "blog https://h/p"
    assert cache_key("blog", "h", "/p", NO_HEADERS) == "blog http://h/p"


def test_services_do_not_share_keys():
    assert cache_key("a", "h", "/", NO_HEADERS, KeyPolicy()) != cache_key(
        "b", "h", "/", NO_HEADERS, KeyPolicy())


def test_bad_query_mode_is_rejected():
    with pytest.raises(ValueError, match="keep, sort or ignore"):
        KeyPolicy(query="lower")
