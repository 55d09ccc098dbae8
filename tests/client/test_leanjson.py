"""client/leanjson.py: the same values and text as ``json``, without importing it (table rows)."""

import json
import math
import subprocess
import sys

import pytest

from owncdn.client import leanjson

DOCUMENTS = [
    b'{"number": 3, "current": true}',
    b'  {"a": [1, -2.5e3, "x\\u00e9\\n", null, false, {}]}\r\n\t',
    '{"k": "\u65e5\u672c", "e": "\U0001f600"}'.encode(),
    b'[]', b'"just a string"', b'0', b'-0.0', b'1e400', b'12345678901234567890123',
    b'{"dup": 1, "dup": 2}',
    b'{"v": NaN, "w": Infinity, "x": -Infinity}',
    b'\xef\xbb\xbf{"bom": 1}',  # a byte order mark: json's own handling
    '{"utf16": 1}'.encode("utf-16"),
    '{"a": 1}',  # str as well as bytes
]


@pytest.mark.parametrize("data", DOCUMENTS)
def test_loads_reads_what_json_reads(data):
    mine, theirs = leanjson.loads(data), json.loads(data)
    assert json.dumps(mine) == json.dumps(theirs) and type(mine) is type(theirs)


@pytest.mark.parametrize("data", [b"", b"   ", b"{", b'{"a": }', b'{"a": 1} x', b"[1,]", b"nul", b"\xff\xfe\xfd",
                                  b'"\x01"', b"{'a': 1}", b'{"a": 1}{"b": 2}'])
def test_loads_fails_as_json_fails(data):
    with pytest.raises(ValueError) as theirs:
        json.loads(data)
    with pytest.raises(ValueError) as mine:
        leanjson.loads(data)
    assert (type(mine.value), str(mine.value)) == (type(theirs.value), str(theirs.value))


@pytest.mark.parametrize("value", [
    {"env": "production", "service": "blog", "release": 7, "files": 1065, "bytes": 67170769, "seconds": 0.0249,
     "serving": ["edge-0", "edge-1"], "failed": [], "pending": []},
    {"name": 'say "hi"\\ \n\t\x00\x7f', "unicode": "\u00e9\u65e5\U0001f600\ud800", "empty": ""},
    [1, -1, 0, 2**70, 1.5, -0.0, 1e300, 1e-300, 0.1, True, False, None, (1, "x"), [], {}],
    {"nested": {"a": [{"b": None}]}}, "text", 3, 2.5, None,
    {"nan": math.nan}, {"inf": math.inf}, [-math.inf],  # json's spellings, by json
    {1: "an int key"}, {None: 1}, {"set": {1}},          # left to json: same text, or its error
])
def test_dumps_writes_what_json_writes(value):
    try:
        expected = json.dumps(value)
    except TypeError as exc:
        with pytest.raises(TypeError, match=str(exc)):
            leanjson.dumps(value)
        return
    assert leanjson.dumps(value) == expected


def test_neither_imports_json():
    code = ("import sys; from owncdn.client import leanjson as j; "
            "assert j.loads(b'{\"a\": [1]}') == {'a': [1]} and j.dumps({'a': [1.5]}) == '{\"a\": [1.5]}'; "
            "assert not {'json', 're'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
