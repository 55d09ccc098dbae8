"""Disk space reserved ahead for a pack's writes (owncdn/packs.py Rule 7, durable.reserve):
allocated before the bytes come, freed where they did not, trimmed at start after a writer
died (the control plane's bundle uploads: tests/control/test_asgibody.py; the edges' bundle
fetches: tests/edge/test_release_bundles.py)."""

from __future__ import annotations

import os

import pytest

from owncdn.core.content.digest import digest
from owncdn.packs import RESERVE_MAX, TRIM_SLACK, Packs, PackWriter

MIB = 1 << 20


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def spy_reserve(monkeypatch) -> list[int]:
    """What every ``PackWriter.reserve`` is asked from now on."""
    asked: list[int] = []
    real = PackWriter.reserve

    def spied(self, count):
        asked.append(count)
        real(self, count)

    monkeypatch.setattr(PackWriter, "reserve", spied)
    return asked


@pytest.mark.parametrize("durable", [False, True])
def test_space_is_reserved_ahead_and_what_was_not_filled_is_freed_at_close(tmp_path, durable):
    packs = Packs(tmp_path / "packs")
    writer = packs.writer(durable=durable)
    writer.reserve(8 * MIB)
    assert allocated(writer.pack.path) >= 8 * MIB and os.path.getsize(writer.pack.path) == 0  # the length unchanged
    data = os.urandom(MIB + 5)
    writer.begin()
    writer.write(memoryview(data))
    writer.keep(digest(data))
    writer.commit()
    writer.close()
    assert os.path.getsize(writer.pack.path) == len(data) and allocated(writer.pack.path) < 2 * MIB
    assert Packs.read(Packs(tmp_path / "packs").load()[digest(data)]) == data


def test_a_cut_frees_the_reservation_and_a_sender_cannot_reserve_without_bound(tmp_path):
    packs = Packs(tmp_path / "packs")
    writer = packs.writer(durable=False)
    writer.reserve(1 << 40)  # a length is the sender's word
    assert RESERVE_MAX <= allocated(writer.pack.path) < RESERVE_MAX + MIB
    writer.begin()
    writer.write(memoryview(os.urandom(1000)))
    writer.cut()
    assert allocated(writer.pack.path) == 0 and writer.reserved == 0
    writer.close()


def test_a_pack_whose_writer_died_with_space_reserved_is_trimmed_at_start(tmp_path):
    packs = Packs(tmp_path / "packs")
    writer = packs.writer(durable=False)  # records appended as blobs are kept, as an edge's
    writer.reserve(16 * MIB)
    data = os.urandom(300_000)
    writer.begin()
    writer.write(memoryview(data))
    writer.keep(digest(data))
    os.close(writer.fd)  # killed: no close, no trim
    os.close(writer.index_fd)
    assert allocated(writer.pack.path) > len(data) + TRIM_SLACK
    held = Packs(tmp_path / "packs").load()
    assert Packs.read(held[digest(data)]) == data and allocated(writer.pack.path) < MIB

