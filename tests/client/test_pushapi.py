"""``client/pushapi.py``'s own URL helpers, against ``urllib.parse`` (which `owncdn push`
does not import), and its request bodies, against ``json``: table-driven."""

from __future__ import annotations

import hashlib
from urllib.parse import quote as urllib_quote
from urllib.parse import urlsplit

import pytest

from owncdn.client.errors import ApiError
from owncdn.client.pushapi import PushApi, quote, split_url
from owncdn.core.content.digest import digest


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8400", "https://cdn.Example.com/prefix/", "http://[::1]:8400/x", "http://[fe80::1]/",
    "http://user:pw@h:1/p?q=1#f", "http://h", "HTTP://H:80", "https://h:443/a/b", "http://h/a?x#y",
])
def test_split_url_is_what_urlsplit_gives(url):
    parts = urlsplit(url)
    assert split_url(url) == (parts.scheme, parts.hostname, parts.port, parts.path)


@pytest.mark.parametrize("url", [
    "ftp://h", "h:80", "http://", "http://:80", "http://h:x", "http://h:99999", "http://[::1", "http://[::1]x",
    "//h/x", "",
])
def test_what_is_not_an_http_url_is_none_and_an_api_error(url):
    assert split_url(url) is None
    with pytest.raises(ApiError, match="not an http"):
        PushApi(url)


@pytest.mark.parametrize("text", ["blog", "a b/c", "ü-ß", "x~y.z_-", "%2F", "?#&=+", "日本"])
def test_quote_is_urllibs_with_nothing_safe(text):
    assert quote(text) == urllib_quote(text, safe="")


@pytest.mark.parametrize("names", [
    [digest(b"a"), digest(b"b")],                          # BLAKE3 names: joined as they are
    [hashlib.sha256(b"a").hexdigest()],                    # SHA-256 names: json
    [],
])
def test_request_bodies_written_without_json_read_back_as_json_writes_them(names):
    import json

    from owncdn.client.pushapi import _names_body, manifest_body
    from owncdn.core.content.manifest import Manifest

    assert json.loads(_names_body(names)) == {"hashes": names}
    manifest = Manifest.build([("b/é.html", digest(b"x"), 1), ("a.txt", digest(b"y"), 1), ("c \"q\".txt", digest(b""), 0)])
    assert json.loads(manifest_body(manifest)) == json.loads(manifest_body(manifest.to_json())) == {"manifest": manifest.to_json()}
