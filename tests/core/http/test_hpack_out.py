"""The response-head HPACK encoder (core/http/hpack_out.py), against RFC 7541's
examples and the hpack package's decoder as the reference."""

import pytest
from hpack import Decoder

from owncdn.core.http.hpack_out import _integer, encode_block, encode_head, encode_lines, encode_stored


@pytest.mark.parametrize(("value", "bits", "encoded"), [
    (10, 5, bytes([0b01010])),                 # C.1.1
    (1337, 5, bytes([0b11111, 0b10011010, 0b00001010])),  # C.1.2
    (42, 8, bytes([0b00101010])),              # C.1.3
    (15, 4, bytes([0x0F, 0x00])),              # exactly the prefix limit takes a second byte
])
def test_integer_representation(value, bits, encoded):
    assert _integer(value, bits) == encoded


BLOCKS = [
    [(b":status", b"200")],                                       # static entry 8: one byte
    [(b":status", b"206"), (b"content-length", b"5")],            # static names, literal values
    [(b"x-cache", b"HIT"), (b"x-served-by", b"edge-1 (fra)")],    # new names
    [(b"server-timing", b"cdn-cache;desc=HIT, edge;dur=0.02" * 10)],  # a long value (multi-byte length)
    [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],           # repeated fields stay separate
    [(b"content-type", b"")],                                     # empty value
]


@pytest.mark.parametrize("fields", BLOCKS)
def test_blocks_decode_to_the_same_fields(fields):
    decoder = Decoder()
    for _ in range(2):  # no state carried between blocks
        assert decoder.decode(encode_block(fields), raw=True) == fields
    assert decoder.header_table_size == 0  # Rule 1: the peer's table for us is empty


def test_static_full_match_is_one_byte():
    assert encode_block([(b":status", b"200")]) == b"\x20\x88"  # size update 0, then index 8


@pytest.mark.parametrize(("head", "status", "fields"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Cache: HIT", 200,
     [(b":status", b"200"), (b"content-length", b"5"), (b"x-cache", b"HIT")]),
    # RFC 9113 §8.2.2: connection-specific fields are not sent; names are lowercase (§8.2.1)
    (b"HTTP/1.1 304 Not Modified\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nETag:  \"v1\" ", 304,
     [(b":status", b"304"), (b"etag", b'"v1"')]),
    (b"HTTP/1.1 100 Continue", 100, [(b":status", b"100")]),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2", 200,
     [(b":status", b"200"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]),
])
def test_http1_heads_become_blocks(head, status, fields):
    for _ in range(2):  # the second time from the remembered lines
        got_status, block = encode_head(head)
        assert got_status == status and Decoder().decode(block, raw=True) == fields


@pytest.mark.parametrize("stored, fields", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nETag: \"x\"\r\n",
     b"Age: 3\r\nX-Cache: HIT\r\nX-Request-Id: e-1f\r\nServer-Timing: edge;dur=0.02\r\n\r\n"),
    (b"HTTP/1.1 404 Not Found\r\nVary: Accept-Encoding\r\n",
     b"Age: 0\r\nX-Cache: HIT\r\nConnection: keep-alive\r\n\r\n"),  # connection-specific: dropped
    (b"HTTP/1.1 204 No Content\r\n", b"\r\n"),
])
def test_a_stored_head_and_its_fields_encode_as_the_whole_head_does(stored, fields):
    """Rule 7: the same block as encode_head of the head written out in one piece; the
    stored part is remembered whole."""
    status, block = encode_stored(stored)
    whole = stored + fields
    assert (status, block + encode_lines(fields)) == encode_head(whole[:whole.index(b"\r\n\r\n")])
    assert encode_stored(stored)[1] is block
    assert Decoder().decode(block + encode_lines(fields), raw=True)[0] == (b":status", stored[9:12])
