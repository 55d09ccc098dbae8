"""The log spool on disk and its shipper: order, bounds, restarts, resends, refusals."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest

from owncdn.edge.logship import FileSender, LogShipper, Rejected, S3Sender, SendError
from owncdn.edge.logspool import LogSpool


def batch(start: int, n: int, size: int = 10) -> bytes:
    return b"".join(b'{"i":%d,"pad":"%s"}\n' % (i, b"x" * size) for i in range(start, start + n))


def test_segments_are_sealed_read_and_removed_in_order(tmp_path):
    spool = LogSpool(tmp_path, 1 << 20)
    spool.append(batch(0, 3))
    spool.seal()
    spool.append(batch(3, 2))
    assert spool.lines == 5 and len(spool.sealed) == 1
    first = spool.oldest()
    assert spool.read(first) == batch(0, 3)
    spool.remove(first)
    spool.seal()
    assert spool.read(spool.oldest()) == batch(3, 2)


def test_a_segment_written_here_is_sent_from_memory_until_forgotten(tmp_path):
    spool = LogSpool(tmp_path, 1 << 20)
    spool.append(batch(0, 3))
    spool.append(batch(3, 2))
    spool.seal()
    segment = spool.oldest()
    assert segment.data == batch(0, 5) == segment.path.read_bytes()  # the copy is what the disk holds
    segment.path.write_bytes(batch(0, 5) + b'{"torn')  # what read would cut, were it reading the disk
    assert spool.read(segment) == batch(0, 5) and spool.torn_lines == 0
    spool.forget()  # the destination is away: the backlog waits on disk only
    assert segment.data is None and spool.read(segment) == batch(0, 5) and spool.torn_lines == 1


def test_what_was_appended_survives_a_restart_and_names_stay_unique(tmp_path):
    spool = LogSpool(tmp_path, 1 << 20)
    spool.append(batch(0, 4))  # written and fsynced; the process "dies" without closing
    old_name = spool.current.name
    again = LogSpool(tmp_path, 1 << 20)
    assert again.lines == 4 and again.read(again.oldest()) == batch(0, 4)
    again.append(batch(4, 1))
    assert again.current.name != old_name


def test_a_full_spool_drops_the_oldest_segment_and_counts_it(tmp_path, capsys):
    one = len(batch(40, 10))  # the largest of the five
    spool = LogSpool(tmp_path, 3 * one)
    for i in range(5):
        spool.append(batch(i * 10, 10))
        spool.seal()
    assert spool.bytes <= 3 * one and (spool.dropped_segments, spool.dropped_lines) == (2, 20)
    assert spool.read(spool.oldest()) == batch(20, 10)
    assert "is full" in capsys.readouterr().err


def test_a_torn_last_line_is_cut_off(tmp_path):
    spool = LogSpool(tmp_path, 1 << 20)
    spool.append(batch(0, 2))
    spool.close()
    path = spool.oldest().path
    path.write_bytes(path.read_bytes() + b'{"i":2,"pa')
    again = LogSpool(tmp_path, 1 << 20)
    assert again.read(again.oldest()) == batch(0, 2) and again.torn_lines == 1


class Flaky:
    """A destination that fails while `down`, and records what it took."""

    def __init__(self) -> None:
        self.down = True
        self.got: list[bytes] = []
        self.reject_next = False
        self.retry_after = 0.01

    async def send(self, segment, data: bytes) -> None:
        if self.reject_next:
            self.reject_next = False
            raise Rejected("400 bad batch")
        if self.down:
            raise SendError("down", retry_after=self.retry_after)
        self.got.append(data)


async def wait_for(cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_the_shipper_keeps_lines_while_the_destination_is_away_then_sends_them_once(tmp_path):
    dest = Flaky()
    shipper = LogShipper("t", LogSpool(tmp_path, 1 << 20), dest)
    shipper.start()
    try:
        for i in range(5):
            shipper.put(batch(i * 3, 3))
            await wait_for(lambda: shipper.spool.lines == (i + 1) * 3)
        await wait_for(lambda: shipper.failures >= 2)
        dest.down = False
        shipper.put(batch(15, 1))
        await wait_for(lambda: shipper.spool.lines == 0)
        assert b"".join(dest.got) == batch(0, 16) and shipper.shipped_lines == 16
    finally:
        await shipper.close()


async def test_a_refused_segment_is_dropped_and_counted_not_retried_for_ever(tmp_path, capsys):
    dest = Flaky()
    dest.down, dest.reject_next = False, True
    shipper = LogShipper("t", LogSpool(tmp_path, 1 << 20), dest)
    shipper.start()
    try:
        shipper.put(batch(0, 2))
        await wait_for(lambda: shipper.rejected_lines == 2)
        shipper.put(batch(2, 1))
        await wait_for(lambda: dest.got == [batch(2, 1)])
    finally:
        await shipper.close()
    assert "dropped 2 lines" in capsys.readouterr().err


async def test_a_batch_put_in_the_same_turn_as_the_cancel_does_not_keep_the_shipper_running(tmp_path):
    """The wake of a last batch and close()'s cancel in one turn of the loop: the
    cancel is not lost (owncdn/waiting.py), the shipper ends, and close() spools the batch."""
    dest = Flaky()
    dest.retry_after = 60.0  # the shipper then waits with a time limit
    shipper = LogShipper("t", LogSpool(tmp_path, 1 << 20), dest)
    shipper.start()
    shipper.put(batch(0, 1))
    await wait_for(lambda: shipper.failures == 1)
    await asyncio.sleep(0.01)  # waiting for the next batch or the retry
    shipper.put(batch(1, 2))
    shipper.task.cancel()  # as close() does
    await asyncio.wait([shipper.task], timeout=10)
    assert shipper.task.cancelled()
    await shipper.close()
    assert LogSpool(tmp_path, 1 << 20).lines == 3


async def test_close_puts_queued_lines_in_the_spool_for_the_next_start(tmp_path):
    dest = Flaky()
    shipper = LogShipper("t", LogSpool(tmp_path, 1 << 20), dest)  # never started
    shipper.put(batch(0, 3))
    await shipper.close()
    assert LogSpool(tmp_path, 1 << 20).lines == 3


async def test_the_file_sink_appends(tmp_path):
    shipper = LogShipper("f", LogSpool(tmp_path / "spool", 1 << 20), FileSender(str(tmp_path / "out" / "access.log")))
    shipper.start()
    try:
        shipper.put(batch(0, 2))
        shipper.put(batch(2, 2))
        await wait_for(lambda: (tmp_path / "out" / "access.log").exists()
                       and (tmp_path / "out" / "access.log").read_bytes() == batch(0, 4))
    finally:
        await shipper.close()


def test_s3_objects_are_partitioned_by_service_and_date_and_named_after_the_segment(tmp_path):
    spool = LogSpool(tmp_path, 1 << 20)
    data = (b'{"service":"www","time":"2026-11-20T23:59:59.999Z","request_id":"a"}\n'
            b'{"service":"api","time":"2026-11-21T00:00:00.000Z","request_id":"b"}\n'
            b'{"service":"www","time":"2026-11-21T00:00:01.000Z","request_id":"c"}\n')
    spool.append(data)
    spool.seal()
    seg = spool.oldest()
    keys = S3Sender("s3://logs/cdn/", "edge-1").keys(seg, data)
    assert sorted(keys) == [f"cdn/service=api/date=2026-11-21/edge-1-{seg.name}.jsonl.gz",
                            f"cdn/service=www/date=2026-11-20/edge-1-{seg.name}.jsonl.gz",
                            f"cdn/service=www/date=2026-11-21/edge-1-{seg.name}.jsonl.gz"]
    assert gzip.decompress(keys[f"cdn/service=api/date=2026-11-21/edge-1-{seg.name}.jsonl.gz"]).count(b"\n") == 1


@pytest.mark.parametrize("status,kind", [(500, SendError), (503, SendError), (429, SendError), (401, SendError),
                                         (400, Rejected), (413, Rejected), (404, Rejected)])
def test_http_answers_that_retry_and_answers_that_refuse(status, kind):
    from owncdn.edge.logship import _check

    with pytest.raises(kind):
        _check(httpx.Response(status, headers={"retry-after": "3"}), "POST x")


async def test_a_shipped_access_log_sends_a_batch_soon_without_the_sweeper(tmp_path):
    from owncdn.edge.accesslog import AccessLog

    class Req:  # what the log reads of a request
        class conn:  # noqa: N801
            client_addr, scheme = "192.0.2.9", "http"

        class headers:  # noqa: N801
            notes, first = None, {}

        service, status, sent, cache, host, target, method, version = "www", 200, 1, "HIT", "w.test", "/", "GET", "1.1"
        id, start, ttfb, origin_ms, origin_bytes, traceparent = "r-1", 1.0, 1.0, None, 0, None

    got: list[bytes] = []
    log = AccessLog("off", "edge-1", "fra")
    log.add_sink(type("Sink", (), {"put": lambda self, data, lines: got.append(data)})())
    log.write(Req(), 1_795_168_800.25, 1.0)  # nobody calls flush: the log's own timer does (Rule 2)
    await wait_for(lambda: got)
    assert got[0].startswith(b'{"schema_version":1,"time":"2026-11-20T10:00:00.250Z","request_id":"r-1",')
    assert got[0].endswith(b'"origin_ms":null,"origin_bytes":0,"traceparent":null}\n')
    log.close()
