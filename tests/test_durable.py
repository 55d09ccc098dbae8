"""Making many files durable at once: one syncfs for a batch, one fsync each otherwise."""

import os
import time

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


class GatedSyncfs:
    """A syncfs that records when each call begins and ends, held until released."""

    def __init__(self, result: int = 0) -> None:
        import threading

        self.result = result
        self.log: list[str] = []
        self.began = threading.Semaphore(0)
        self.gates: list = []
        self.lock = threading.Lock()
        self.threading = threading

    def __call__(self, fd: int) -> int:
        gate = self.threading.Event()
        with self.lock:
            n = len(self.gates) + 1
            self.gates.append(gate)
            self.log.append(f"begin {n}")
        self.began.release()
        assert gate.wait(10)
        with self.lock:
            self.log.append(f"end {n}")
        return self.result

    def release(self, n: int) -> None:
        self.gates[n - 1].set()


def waiter(group, log: list, name: str, paths=None):
    import threading

    def run():
        if paths is None:
            log.append((name, group.wait()))
        else:
            group.sync_paths(paths)
            log.append((name, True))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def settle(group, waiting: int) -> None:
    """Until ``waiting`` threads wait for the group's sync in flight to end."""
    import time

    deadline = time.monotonic() + 5
    while group.waiting < waiting:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_writer_is_answered_only_by_a_sync_begun_after_it_called(tmp_path, monkeypatch):
    """A sync that was in flight when a writer called does not answer it: it waits for
    the next one, and the writers that came during one share the next."""
    syncfs = GatedSyncfs()
    monkeypatch.setattr(durable, "_syncfs", syncfs)
    group = durable.SyncGroup(tmp_path)
    done: list = []
    a = waiter(group, done, "a")
    assert syncfs.began.acquire(timeout=5)  # sync 1 runs, begun by a
    late = [waiter(group, done, name) for name in ("b", "c", "d")]  # their writes ended during sync 1
    settle(group, 3)
    syncfs.release(1)
    a.join(5)
    assert done == [("a", True)]  # sync 1 answered a only
    assert syncfs.began.acquire(timeout=5)  # sync 2, begun by one of b, c, d after sync 1 ended
    assert done == [("a", True)]
    syncfs.release(2)
    for thread in late:
        thread.join(5)
    assert sorted(done) == [("a", True), ("b", True), ("c", True), ("d", True)]
    assert syncfs.log == ["begin 1", "end 1", "begin 2", "end 2"]  # one sync for the three
    assert (group.begun, group.ended) == (2, 2) and not group.running


def test_a_failed_group_sync_makes_its_writers_fsync_their_own_files(tmp_path, counted, monkeypatch):
    monkeypatch.setattr(durable, "_syncfs", lambda fd: -1)
    group = durable.SyncGroup(tmp_path)
    paths = []
    for i in range(durable.SYNCFS_MIN):
        path = tmp_path / f"g{i}"
        path.write_bytes(b"z")
        paths.append(path)
    assert group.wait() is False
    group.sync_paths(paths)
    assert counted["fsync"] == durable.SYNCFS_MIN
    monkeypatch.setattr(durable, "_syncfs", lambda fd: 0)
    group.sync_paths(paths)  # it works again
    assert counted["fsync"] == durable.SYNCFS_MIN and group.failed == {1, 2}


def test_a_few_files_never_wait_for_a_group(tmp_path, counted, monkeypatch):
    syncfs = GatedSyncfs()
    monkeypatch.setattr(durable, "_syncfs", syncfs)
    group = durable.SyncGroup(tmp_path)
    done: list = []
    a = waiter(group, done, "a")
    assert syncfs.began.acquire(timeout=5)
    path = tmp_path / "one"
    path.write_bytes(b"1")
    group.sync_paths([path])  # returns while the group's sync is held
    assert counted["fsync"] == 1 and done == []
    syncfs.release(1)
    a.join(5)
    assert done == [("a", True)]


@pytest.mark.parametrize("before, after, covered", [
    ([], [], False),        # no sync since the ticket
    ([0], [], False),       # one ended before it: it wrote back earlier writes only
    ([], [0], True),        # one begun after it ended well
    ([], [-1], False),      # ... failed
    ([], [-1, 0], True),    # a failed one, then one that worked
    ([0], [0, -1], True),   # one worked after the ticket; a later failure does not undo it
])
def test_a_ticket_is_covered_once_a_sync_begun_after_it_worked(tmp_path, monkeypatch, before, after, covered):
    results = iter(before + after)
    monkeypatch.setattr(durable, "_syncfs", lambda fd: next(results))
    group = durable.SyncGroup(tmp_path)
    for _ in before:
        group.wait()
    ticket = group.ticket()
    for _ in after:
        group.wait()
    assert group.covered(ticket) is covered
    if covered:
        assert group.wait(ticket) is True  # at once: no sync begun (the results are used up)


def test_waiting_on_a_ticket_skips_a_sync_begun_before_it(tmp_path, monkeypatch):
    syncfs = GatedSyncfs()
    monkeypatch.setattr(durable, "_syncfs", syncfs)
    group = durable.SyncGroup(tmp_path)
    done: list = []
    waiter(group, done, "a")
    assert syncfs.began.acquire(timeout=5)  # sync 1 runs
    ticket = group.ticket()  # writes done while sync 1 runs: it may have missed them
    assert ticket == 1
    group.soon()
    syncfs.release(1)
    assert syncfs.began.acquire(timeout=5)  # soon() begins sync 2 once 1 ended, without a caller waiting
    assert not group.covered(ticket)
    syncfs.release(2)
    assert group.wait(ticket) is True and group.covered(ticket)
    deadline = time.monotonic() + 5
    while group.flushing:  # soon()'s thread is gone once caught up
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert syncfs.log == ["begin 1", "end 1", "begin 2", "end 2"] and (group.begun, group.ended) == (2, 2)


def test_soon_does_nothing_without_syncfs(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "_syncfs", False)
    group = durable.SyncGroup(tmp_path)
    group.soon()
    assert not group.flushing and group.begun == 0
