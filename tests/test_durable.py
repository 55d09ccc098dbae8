"""Making many files durable at once: one syncfs for a batch, one fsync each otherwise."""

import os

import pytest

from owncdn import durable


def written(tmp_path, n: int) -> list[int]:
    fds = []
    for i in range(n):
        fd = os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * i)
        fds.append(fd)
    return fds


@pytest.fixture
def counted(monkeypatch):
    calls = {"fsync": 0, "syncfs": 0}
    real = os.fsync

    def fsync(fd):
        calls["fsync"] += 1
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    return calls


def test_a_batch_takes_one_syncfs_and_a_few_files_an_fsync_each(tmp_path, counted, monkeypatch):
    def syncfs(fd):
        counted["syncfs"] += 1
        return 0

    monkeypatch.setattr(durable, "_syncfs", syncfs)
    fds = written(tmp_path, durable.SYNCFS_MIN)
    try:
        durable.sync_many(fds)
        assert counted == {"fsync": 0, "syncfs": 1}
        durable.sync_many(fds[:3])
        assert counted == {"fsync": 3, "syncfs": 1}
        durable.sync_many([])
        assert counted == {"fsync": 3, "syncfs": 1}
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize("syncfs", [False, lambda fd: -1])  # none on this system, or it failed
def test_without_a_working_syncfs_every_file_is_fsynced(tmp_path, counted, monkeypatch, syncfs):
    monkeypatch.setattr(durable, "_syncfs", syncfs)
    fds = written(tmp_path, durable.SYNCFS_MIN + 1)
    try:
        durable.sync_many(fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert counted["fsync"] == durable.SYNCFS_MIN + 1


def test_the_real_syncfs_of_this_system_works(tmp_path):
    fds = written(tmp_path, durable.SYNCFS_MIN)
    try:
        durable.sync_many(fds)  # raises if neither syncfs nor fsync worked
    finally:
        for fd in fds:
            os.close(fd)
    assert (tmp_path / "f3").read_bytes() == b"xxx"


def test_write_all_writes_every_file_or_leaves_none_it_made(tmp_path):
    from owncdn.durable import write_all

    files = [(tmp_path / f"f{i}", b"x" * i) for i in range(20)]  # enough for one syncfs
    write_all(files, exclusive=True)
    assert [p.read_bytes() for p, _ in files] == [d for _, d in files]
    clash = tmp_path / "taken"
    clash.write_bytes(b"old")
    batch = [(tmp_path / "new1", b"a"), (clash, b"b"), (tmp_path / "new2", b"c")]
    try:
        write_all(batch, exclusive=True)
    except FileExistsError:
        pass
    else:
        raise AssertionError("an existing file was overwritten")
    assert not (tmp_path / "new1").exists() and not (tmp_path / "new2").exists()
    assert clash.read_bytes() == b"old"
    write_all([(clash, b"new")])  # not exclusive: replaced
    assert clash.read_bytes() == b"new"


def test_files_written_before_are_made_durable_by_path(tmp_path, counted, monkeypatch):
    calls = []

    def syncfs(fd):
        calls.append(fd)
        return 0

    monkeypatch.setattr(durable, "_syncfs", syncfs)
    paths = []
    for i in range(durable.SYNCFS_MIN):
        path = tmp_path / f"p{i}"
        path.write_bytes(b"y" * i)  # written and closed
        paths.append(path)
    durable.sync_paths(paths)
    assert (len(calls), counted["fsync"]) == (1, 0)
    durable.sync_paths(paths[:2])  # a few: one fsync each
    assert (len(calls), counted["fsync"]) == (1, 2)
    durable.sync_paths([])
    monkeypatch.setattr(durable, "_syncfs", lambda fd: -1)  # a syncfs that failed: fsync each
    durable.sync_paths(paths)
    assert counted["fsync"] == 2 + durable.SYNCFS_MIN
    with pytest.raises(FileNotFoundError):
        durable.sync_paths([tmp_path / "absent"])


def test_boot_id_names_this_boot_and_is_none_without_the_file(monkeypatch, tmp_path):
    first = durable.boot_id()
    assert first is None or (len(first) >= 32 and first == durable.boot_id())
    monkeypatch.setattr(durable, "BOOT_ID_FILE", str(tmp_path / "absent"))
    assert durable.boot_id() is None


def test_sync_filesystem_takes_one_syncfs_or_a_sync_without_one(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(durable, "_syncfs", lambda fd: calls.append("syncfs") or 0)
    durable.sync_filesystem(tmp_path)
    monkeypatch.setattr(durable, "_syncfs", False)
    monkeypatch.setattr(durable.os, "sync", lambda: calls.append("sync"))
    durable.sync_filesystem(tmp_path)
    assert calls == ["syncfs", "sync"]
