"""The S3 log sink against a real S3-compatible server (SeaweedFS): gzip JSON-lines
objects partitioned service=/date=, and a resent segment overwrites its own objects."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from owncdn.edge.logship import LogShipper, S3Sender
from owncdn.edge.logspool import LogSpool
from owncdn.testing.seaweedfs import SeaweedServer

LINES = (b'{"schema_version":1,"service":"www","time":"2026-11-20T23:59:59.999Z","request_id":"a"}\n'
         b'{"schema_version":1,"service":"api","time":"2026-11-21T00:00:00.000Z","request_id":"b"}\n'
         b'{"schema_version":1,"service":"www","time":"2026-11-21T00:00:01.000Z","request_id":"c"}\n')


@pytest.fixture(scope="module")
def weed():
    with SeaweedServer() as server:
        server.create_bucket("logs")
        yield server


def objects(client) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket="logs").get("Contents", [])
    return {o["Key"]: gzip.decompress(client.get_object(Bucket="logs", Key=o["Key"])["Body"].read()) for o in listed}


async def test_lines_land_partitioned_and_a_resend_adds_nothing(tmp_path, weed):
    client = weed.client()
    sender = S3Sender("s3://logs/cdn", "edge-1", client=client)
    spool = LogSpool(tmp_path, 1 << 20)
    spool.append(LINES)
    spool.seal()
    segment = spool.oldest()
    await sender.send(segment, spool.read(segment))
    first = await asyncio.to_thread(objects, client)
    await sender.send(segment, spool.read(segment))  # the ack was lost: sent again
    again = await asyncio.to_thread(objects, client)
    assert first == again
    assert {k.rsplit("/", 1)[0]: v.count(b"\n") for k, v in first.items()} == {
        "cdn/service=www/date=2026-11-20": 1, "cdn/service=api/date=2026-11-21": 1, "cdn/service=www/date=2026-11-21": 1}
    assert b"".join(sorted(first.values())) == b"".join(sorted(line + b"\n" for line in LINES.splitlines()))


async def test_the_shipper_empties_its_spool_into_the_bucket(tmp_path, weed):
    client = weed.client()
    shipper = LogShipper("s3-0", LogSpool(tmp_path, 1 << 20), S3Sender("s3://logs/shipped", "edge-2", client=client))
    shipper.start()
    try:
        shipper.put(LINES)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while shipper.shipped_lines < 3:
            assert loop.time() < deadline, shipper
            await asyncio.sleep(0.05)
    finally:
        await shipper.close()
    keys = [k for k in await asyncio.to_thread(objects, client) if k.startswith("shipped/")]
    assert len(keys) == 3 and shipper.spool.lines == 0
