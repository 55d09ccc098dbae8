"""owncdn.edge.variants: the compressed forms an edge makes of pushed text files (rules 1-4)."""

from __future__ import annotations

import asyncio
import gzip
import os

from owncdn.edge import variants as variants_module
from owncdn.edge.variants import ENTRY_BYTES, NOT_WORTH, Variants

TEXT = b"<li>an item of a long list</li>\n" * 1000


def held_by(gate: asyncio.Event):
    """A read that gives TEXT, in the pool's thread, once ``gate`` is set."""
    loop = asyncio.get_running_loop()

    def slow():
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result()
        return TEXT

    return slow


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
    slow = held_by(gate)

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


async def test_forms_are_kept_on_disk_and_read_back_instead_of_made_again(tmp_path):
    from owncdn.edge.formfiles import FormFiles

    sha, noise = "b" * 64, os.urandom(4000)
    first = Variants(forms=FormFiles(tmp_path / "forms"))
    made = await first.make(sha, "br", lambda: TEXT, len(TEXT))
    assert await first.make("d" * 64, "gzip", lambda: noise, len(noise)) == NOT_WORTH
    assert first.made["br"] == 1 and first.loaded == 0
    first.close()

    def never():
        raise AssertionError("a form kept on disk is read back, not made again")

    again = Variants(forms=FormFiles(tmp_path / "forms"))   # Rule 3: an edge restarted
    assert await again.make(sha, "br", never, len(TEXT)) == made
    assert await again.make("d" * 64, "gzip", never, len(noise)) == NOT_WORTH
    assert again.get(sha, "br") == made and again.loaded == 2
    assert again.made == {"br": 0, "gzip": 0} and again.saved == 0
    exposition = "".join(f"{m.name} {s.value}\n" for m in again.metric_families("x_") for s in m.samples)
    assert "x_push_compressed_forms_loaded 2" in exposition
    again.close()


async def test_a_form_gone_from_memory_comes_back_from_disk(tmp_path):
    from owncdn.edge.formfiles import FormFiles

    one = len(await Variants().make("x" * 64, "gzip", lambda: TEXT, len(TEXT)))
    v = Variants(budget=one + ENTRY_BYTES, forms=FormFiles(tmp_path / "forms"))
    reads = []

    def read():
        reads.append(1)
        return TEXT

    for name in "aba":
        await v.make(name * 64, "gzip", read, len(TEXT))      # a, then b pushes a out, then a again
    assert v.get("a" * 64, "gzip") and v.get("b" * 64, "gzip") is None
    assert reads == [1, 1] and v.made["gzip"] == 2 and v.loaded == 1
    v.close()


async def test_background_forms_wait_behind_a_limit_of_their_own(monkeypatch):
    monkeypatch.setattr(variants_module, "BACKGROUND", 1)
    v = Variants()
    gate = asyncio.Event()
    slow = held_by(gate)

    a = v.make("a" * 64, "gzip", slow, len(TEXT), background=True)
    assert v.make("b" * 64, "gzip", slow, len(TEXT), background=True) is None   # Rule 5: one may wait
    asked = v.make("c" * 64, "gzip", lambda: TEXT, len(TEXT))                   # a visitor's is not behind it
    assert gzip.decompress(await asked) == TEXT
    assert v.make("a" * 64, "gzip", slow, len(TEXT)) is a                        # Rule 1: shared with a visitor
    gate.set()
    await a
    assert v.make("b" * 64, "gzip", lambda: TEXT, len(TEXT), background=True) is not None
    v.close()
