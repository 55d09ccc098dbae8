"""edge/sync.py Rule 3: a control plane that ends each event stream as it opens is
backed off from, not asked again at once, over and over."""

from __future__ import annotations

import asyncio
import json

from owncdn.edge.sync import SyncAgent


class _TurnsAway:
    """A control plane on loopback: registers a node, then answers every event stream
    with an empty one (as one does for a node it deleted meanwhile)."""

    def __init__(self) -> None:
        self.streams = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if head.startswith(b"POST /v1/nodes/register"):
                    body = json.dumps({"node_id": "n-1", "token": "t"}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(body), body))
                else:
                    self.streams += 1
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_streams_that_end_as_they_open_are_backed_off_from(tmp_path, capsys):
    cp = _TurnsAway()
    url = await cp.start()
    agent = SyncAgent(object(), url, "bootstrap", tmp_path, name="e", location="l", env="production", address="")
    agent.start()
    try:
        await asyncio.sleep(1.6)
    finally:
        await agent.stop()
        cp.server.close()
    # 0.1 + 0.2 + 0.4 + 0.8 s of pauses fit; at once, it was hundreds
    assert 3 <= cp.streams <= 6, cp.streams
    assert "the event stream ended as it opened; retrying in 0.2s" in capsys.readouterr().err
