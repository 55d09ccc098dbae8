"""owncdn.edge.variants: the compressed forms an edge makes of pushed text files (rules 1-4)."""

from __future__ import annotations

import asyncio
import gzip
import os

from owncdn.edge import variants as variants_module
from owncdn.edge.variants import ENTRY_BYTES, NOT_WORTH, Variants

TEXT = b"<li>an item of a long list</li>\n" * 1000


async def test_made_once_and_shared_by_its_askers():
    v = Variants()
    reads = []

    def read():
        reads.append(1)
        return TEXT

    first = v.make("a" * 64, "gzip", read, len(TEXT))
    assert v.make("a" * 64, "gzip", read, len(TEXT)) is first   # Rule 1: asked again while made
    data = await first
    assert gzip.decompress(data) == TEXT and v.get("a" * 64, "gzip") == data
    assert reads == [1] and v.made["gzip"] == 1 and v.saved == len(TEXT) - len(data)
    assert v.get("a" * 64, "br") is None
    v.close()


async def test_not_worth_it_is_remembered_and_a_failed_read_is_not():
    v = Variants()
    noise = os.urandom(4000)
    assert await v.make("n" * 64, "gzip", lambda: noise, len(noise)) == NOT_WORTH
    assert v.get("n" * 64, "gzip") == NOT_WORTH and v.made["gzip"] == 0   # Rule 2

    def gone():
        raise FileNotFoundError("collected")

    assert await v.make("g" * 64, "gzip", gone, 4000) is None
    assert v.get("g" * 64, "gzip") is None   # asked again, made again
    v.close()


async def test_the_oldest_go_past_the_budget():
    one = len(await Variants().make("x" * 64, "gzip", lambda: TEXT, len(TEXT)))
    v = Variants(budget=2 * (one + ENTRY_BYTES))
    for name in "abc":
        await v.make(name * 64, "gzip", lambda: TEXT, len(TEXT))
    assert v.get("a" * 64, "gzip") is None                          # Rule 3: the oldest went
    assert v.get("b" * 64, "gzip") and v.get("c" * 64, "gzip")
    assert v.bytes == 2 * (one + ENTRY_BYTES)
    v.close()


async def test_at_most_pending_queued(monkeypatch):
    monkeypatch.setattr(variants_module, "PENDING", 2)
    v = Variants()
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow():
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result()
        return TEXT

    a = v.make("a" * 64, "gzip", slow, len(TEXT))
    b = v.make("b" * 64, "gzip", slow, len(TEXT))
    assert v.make("c" * 64, "gzip", slow, len(TEXT)) is None   # Rule 1: too many queued
    gate.set()
    await asyncio.gather(a, b)
    assert v.make("c" * 64, "gzip", lambda: TEXT, len(TEXT)) is not None
    v.close()


async def test_a_compressor_that_raises_leaves_nothing_behind():
    v = Variants()
    made = v.make("e" * 64, "gzip", lambda: None, 10)   # compress(None) raises TypeError in the thread
    try:
        await made
    except TypeError:
        pass
    else:
        raise AssertionError("the future should carry the compressor's error")
    await asyncio.sleep(0)
    assert v.get("e" * 64, "gzip") is None and v.making == {} and v.bytes == 0
    v.close()
