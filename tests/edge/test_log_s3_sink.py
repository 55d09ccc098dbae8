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


FULL = b"\n".join(
    b'{"schema_version":1,"time":"2026-11-21T00:00:0%dZ","request_id":"r%d","service":"%s","client":"203.0.113.7",'
    b'"scheme":"https","protocol":"2","method":"GET","host":"www.example.com","path":"/","status":200,"bytes":5,'
    b'"cache":"HIT","edge":"edge-1","location":"fra","user_agent":null,"referrer":null,"range":null,'
    b'"ttfb_ms":0.1,"duration_ms":0.2,"origin_ms":null,"origin_bytes":0,"traceparent":null}' % (i, i, svc)
    for i, svc in enumerate((b"www", b"api", b"www"))) + b"\n"


async def test_parquet_objects_hold_the_lines_as_columns(tmp_path, weed):
    import duckdb

    client = weed.client()
    sender = S3Sender("s3://logs/pq", "edge-1", client=client, format="parquet")
    spool = LogSpool(tmp_path, 1 << 20)
    spool.append(FULL)
    spool.seal()
    segment = spool.oldest()
    await sender.send(segment, spool.read(segment))
    listed = client.list_objects_v2(Bucket="logs", Prefix="pq/").get("Contents", [])
    keys = sorted(o["Key"] for o in listed)
    assert [k.rsplit("/", 1)[0] for k in keys] == ["pq/service=api/date=2026-11-21", "pq/service=www/date=2026-11-21"]
    rows = []
    for key in keys:
        path = tmp_path / key.replace("/", "_")
        path.write_bytes(client.get_object(Bucket="logs", Key=key)["Body"].read())
        rows += duckdb.connect().execute(f"SELECT service, request_id, status FROM '{path}'").fetchall()
    assert sorted(rows) == [("api", "r1", 200), ("www", "r0", 200), ("www", "r2", 200)]


def test_only_s3_sinks_take_a_format():
    from owncdn.core.config.logs import LogSink

    assert LogSink(type="s3", url="s3://b/p", format="parquet").format == "parquet"
    with pytest.raises(ValueError, match="for s3 sinks"):
        LogSink(type="file", path="/tmp/x", format="parquet")
