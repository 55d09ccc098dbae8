"""Queued pack writes (owncdn/packs.py Rule 8): the bytes of many blobs go out in one
``writev`` at ``flush``; cuts, keeps, commits and closes see the same pack a write per
blob made (the callers: tests/edge/test_bundlefetch.py, tests/control/test_rawbody.py)."""

from __future__ import annotations

import os

import pytest

from owncdn.core.content.digest import digest
from owncdn.packs import Packs

A, B, C = b"a" * 5000, b"bb" * 7000, b"c" * 3


def run(writer, steps):
    """Apply ``steps``: ("blob", data, lead) begins and queues a blob (in two pieces),
    then ("keep",) / ("cut",) / ("flush",); the kept (name, slot) in order."""
    kept, ended = [], []
    for step in steps:
        if step[0] == "blob":
            _, data, lead = step
            writer.begin(lead)
            writer.queue(memoryview(data)[:len(data) // 2])
            writer.queue(memoryview(data)[len(data) // 2:])
        elif step[0] == "keep":
            ended.append((digest(data), writer.ended()))
        elif step[0] == "cut":
            writer.cut()
        elif step[0] == "flush":
            writer.flush()
            writer.keep_all(ended)
            kept += ended
            ended = []
    writer.keep_all(ended)
    return kept + ended


# (steps, the pack's bytes once all is written)
CASES = [
    ([("blob", A, b""), ("keep",), ("blob", B, b""), ("keep",)], A + B),
    ([("blob", A, b"H1"), ("keep",), ("blob", B, b"H2"), ("keep",)], b"H1" + A + b"H2" + B),
    ([("blob", A, b"H1"), ("keep",), ("blob", B, b"H2"), ("cut",), ("blob", C, b"H3"), ("keep",)], b"H1" + A + b"H3" + C),
    ([("blob", A, b""), ("keep",), ("flush",), ("blob", B, b""), ("cut",), ("blob", C, b""), ("keep",)], A + C),
    ([("blob", A, b"H1"), ("flush",), ("cut",), ("blob", C, b"H3"), ("keep",)], b"H3" + C),  # cut after its bytes went out
    ([("blob", b"", b"H0"), ("keep",), ("blob", A, b""), ("keep",)], b"H0" + A),  # an empty blob: its lead alone
]


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("steps, expected", CASES)
def test_queued_writes_leave_the_pack_a_write_per_blob_would(tmp_path, durable, steps, expected):
    packs = Packs(tmp_path / "packs")
    writer = packs.writer(durable=durable)
    kept = run(writer, steps)
    if durable:
        writer.commit()
    path = writer.pack.path
    writer.close()
    assert open(path, "rb").read() == expected
    loaded = Packs(tmp_path / "packs").load()  # what the index says, read back as at a start
    assert {sha: (slot.offset, slot.size) for sha, slot in loaded.items()} == \
        {sha: (slot.offset, slot.size) for sha, slot in kept}
    for sha, slot in loaded.items():
        assert digest(Packs.read(slot)) == sha


def test_bytes_never_flushed_are_dropped_at_close_and_no_record_names_them(tmp_path):
    packs = Packs(tmp_path / "packs")
    writer = packs.writer(durable=False)
    writer.begin()
    writer.queue(memoryview(A))
    writer.keep_all([(digest(A), writer.ended())])  # flushed, then kept
    writer.begin()
    writer.queue(memoryview(B))  # never flushed (a fetch that failed before its piece's end)
    writer.reserve(1 << 20)
    path = writer.pack.path
    writer.close()
    assert os.path.getsize(path) == len(A)
    assert set(Packs(tmp_path / "packs").load()) == {digest(A)}


def test_a_flush_writes_more_pieces_than_one_writev_takes(tmp_path):
    packs = Packs(tmp_path / "packs")
    writer = packs.writer(durable=False)
    pieces = [bytes([i % 251]) * 3 for i in range(3000)]  # over IOV_MAX (1024 on Linux)
    writer.begin()
    for piece in pieces:
        writer.queue(piece)
    data = b"".join(pieces)
    writer.keep_all([(digest(data), writer.ended())])
    path = writer.pack.path
    writer.close()
    assert open(path, "rb").read() == data
