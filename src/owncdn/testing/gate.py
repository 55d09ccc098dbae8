"""A TCP proxy on loopback that can hold a download still, to interrupt it on purpose.

    async with Gate("127.0.0.1", control_port, limit=2 << 20) as gate:
        ...  # point a node at gate.url; every connection's answer stops after 2 MiB
        gate.open()  # let everything through again

Each connection forwards the client's bytes at once; the server's bytes flow until
that connection has carried ``limit`` bytes, then wait (nothing is lost or closed)
until ``open()``. ``sent`` counts the server bytes passed to clients, so a test can
tell how much a resumed download moved. No timing is involved: a held connection
stays held until the test decides.
"""

from __future__ import annotations

import asyncio

__all__ = ["Gate"]


class Gate:
    def __init__(self, host: str, port: int, limit: int | None = None) -> None:
        self.target = (host, port)
        self.limit = limit
        self.sent = 0
        self.server: asyncio.base_events.Server | None = None
        self.opened = asyncio.Event()
        if limit is None:
            self.opened.set()
        self.tasks: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    def __repr__(self) -> str:
        return f"<Gate -> {self.target[0]}:{self.target[1]} limit={self.limit} sent={self.sent}>"

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        self.opened.set()

    async def __aenter__(self) -> "Gate":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        tasks = [asyncio.ensure_future(self._pipe(reader, up_writer, False)),
                 asyncio.ensure_future(self._pipe(up_reader, writer, True))]
        self.tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.tasks.difference_update(tasks)
            for w in (writer, up_writer):
                w.close()
                self.writers.discard(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool) -> None:
        """Copy bytes; ``answers``: the server-to-client direction, counted and held."""
        limit = self.limit if answers else None
        carried = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if limit is not None and not self.opened.is_set():
                    room = limit - carried
                    if room < len(data):
                        if room > 0:
                            writer.write(data[:room])
                            carried += room
                            self.sent += room
                            await writer.drain()
                        await self.opened.wait()
                        data = data[max(room, 0):]
                writer.write(data)
                carried += len(data)
                if answers:
                    self.sent += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.write_eof()
            except (OSError, RuntimeError):
                pass
