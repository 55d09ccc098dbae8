"""Inbound HPACK blocks (core/http/hpack_in.py): the quick reading of blocks that change
no decoder state agrees with the hpack package's Decoder and leaves its table alone."""

from hpack import Decoder, Encoder
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from owncdn.core.http.hpack_in import BlockReader


NAMES = [b"x-a", b"x-b", b"accept", b"user-agent", b"cookie", b":path"]
VALUES = [b"", b"1", b"/a", b"gzip, deflate", b"v" * 130, "é".encode()]


@given(st.lists(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES), st.booleans()),
                         max_size=6), min_size=1, max_size=12),
       st.booleans(), st.sampled_from([4096, 200]))
@hypothesis_settings(max_examples=150, deadline=None)
def test_the_quick_reading_agrees_with_the_decoder(blocks, huffman, table_size):
    """Rule 5: a block read without the Decoder changes no state and reads the same."""
    reader = BlockReader(65536)
    encoder, reference = Encoder(), Decoder()
    encoder.header_table_size = table_size
    for fields in blocks:
        block = encoder.encode([(n, v, sensitive) for n, v, sensitive in fields], huffman=huffman)
        expected = [tuple(field) for field in reference.decode(block, raw=True)]
        quick = reader._simple(block)
        if quick is None:
            got = reader.decoder.decode(block, raw=True)
        else:
            got = quick
        assert [(bytes(n), bytes(v)) for n, v in got] == expected
    assert [tuple(map(bytes, e)) for e in reader.decoder.header_table.dynamic_entries] == \
        [tuple(map(bytes, e)) for e in reference.header_table.dynamic_entries]



def test_blocks_are_remembered_until_the_decoder_reads_one():
    reader, encoder = BlockReader(65536), Encoder()
    first = encoder.encode([(b"x-a", b"1")])  # incremental indexing: the Decoder's
    assert reader.read(first) == ([(b"x-a", b"1")], None)
    again = encoder.encode([(b"x-a", b"1")])  # now one index octet: read here, remembered
    fields, entry = reader.read(again)
    assert fields == [(b"x-a", b"1")] and entry == [fields, None]
    assert reader.read(again)[1] is entry
    reader.read(encoder.encode([(b"x-b", b"2")]))  # the table changes: everything forgotten
    fields, later = reader.read(again)  # the same bytes, the newest entry: another field now
    assert fields == [(b"x-b", b"2")] and later is not entry
    assert repr(reader) == "<BlockReader remembered=1 table=2>"
