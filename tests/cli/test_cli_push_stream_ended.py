"""`owncdn push --wait` and edges whose event stream ended (owncdn.core.contact,
control/api/events.py Rule 6), with real processes: a control plane (in this process),
three `owncdn edge` processes, each reaching it through a proxy of this test that can
cut its connections, and the `owncdn push` command.

A killed edge is named as not serving and not waited for (the push exits 0 at once,
not after the 60 s the edge stays "in contact"); restarted, it catches up and is
waited for again; an edge whose stream is cut and comes back within seconds is still
waited for."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from owncdn.testing.fleet import Fleet, free_port

SOURCE = """version: 1
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
"""
EDGES = ["edge-0", "edge-1", "edge-2"]


class Cut:
    """A TCP proxy to the control plane whose connections the test can cut: ``cut()``
    closes them all and holds new ones (accepted, not forwarded) until ``resume()``."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.open = asyncio.Event()
        self.open.set()
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.server: asyncio.base_events.Server | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<Cut -> {self.target} open={self.open.is_set()} connections={len(self.pairs)}>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> Cut:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    def cut(self) -> None:
        self.open.clear()
        for pair in list(self.pairs):
            for writer in pair:
                writer.transport.abort()

    def resume(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.server.close()
        self.cut()
        self.closed = True
        self.open.set()  # the held ones end

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.open.wait()
        if self.closed:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.pairs.discard(pair)
            for w in pair:
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except (OSError, RuntimeError):
        writer.transport.abort()


class Edges:
    """The edge processes, each through its own ``Cut``."""

    def __init__(self, fleet: Fleet, root: Path) -> None:
        self.fleet, self.root = fleet, root
        self.cuts: dict[str, Cut] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {name: free_port() for name in EDGES}

    async def start(self, name: str) -> None:
        if name not in self.cuts:
            self.cuts[name] = await Cut(self.fleet.port).start()
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "owncdn.cli", "edge", "--control", self.cuts[name].url,
             "--token", self.fleet.bootstrap_token, "--state-dir", str(self.root / name),
             "--listen", f"127.0.0.1:{self.ports[name]}", "--admin", f"127.0.0.1:{free_port()}",
             "--access-log", "off", "--id", name, "--location", name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    async def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)

    async def close(self) -> None:
        for name in list(self.procs):
            await self.kill(name)
        for cut in self.cuts.values():
            cut.close()


async def push(fleet: Fleet, site: Path, cache: Path, *extra: str) -> tuple[int, str, str, float]:
    env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=fleet.admin_token, XDG_CACHE_HOME=str(cache))
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "owncdn.cli", "push", str(site), "--service", "blog", "--wait", "60", *extra,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - started


async def status(fleet: Fleet, number: int) -> dict:
    return await asyncio.to_thread(fleet.api.release_status, fleet.env, "blog", number)


def names(rows: list[dict]) -> list[str]:
    return [r["name"] for r in rows]


def node(fleet: Fleet, name: str):
    return next(n for n in fleet.store.list_nodes(fleet.env) if n.name == name)


async def until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def test_a_killed_edge_is_not_waited_for_and_a_cut_stream_that_comes_back_is(tmp_path):
    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_text("one")
    cache = tmp_path / "cache"
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        version = await fleet.apply(SOURCE)
        edges = Edges(fleet, tmp_path)
        try:
            for name in EDGES:
                await edges.start(name)

            async def streaming() -> bool:
                nodes = [n for n in fleet.store.list_nodes(fleet.env) if n.kind == "edge"]
                return len(nodes) == 3 and all(n.running_version == version for n in nodes)
            await until(streaming, "the edges registering and applying the config")

            code, out, err, _ = await push(fleet, site, cache, "--json")
            assert code == 0, err
            assert json.loads(out)["serving"] == EDGES

            # killed: not waited for once its stream is gone, and named
            await edges.kill("edge-2")
            (site / "index.html").write_text("two")
            code, out, err, took = await push(fleet, site, cache)
            assert code == 0, err
            assert "served by 2 edge(s); not serving: edge-2 (event stream ended; not waited for)" in out
            assert took < 30  # not the 60 s of the wait (edge-2 was heard from seconds ago)
            st = await status(fleet, 2)
            assert (names(st["serving"]), st["pending"], names(st["disconnected"])) == (["edge-0", "edge-1"], [], ["edge-2"])

            # restarted: it catches up and counts again
            await edges.start("edge-2")

            async def caught_up() -> bool:
                st = await status(fleet, 2)
                return names(st["serving"]) == EDGES and st["disconnected"] == []
            await until(caught_up, "the restarted edge serving release 2")
            (site / "index.html").write_text("three")
            code, out, err, _ = await push(fleet, site, cache, "--json")
            assert code == 0, err
            result = json.loads(out)
            assert (result["release"], result["serving"], result["disconnected"]) == (3, EDGES, [])

            # cut: edge-1's stream ends (its end is stored), the push's wait starts, the
            # others serve; back within seconds, edge-1 is still waited for
            edges.cuts["edge-1"].cut()

            async def ended() -> bool:
                return node(fleet, "edge-1").stream_ended_at is not None
            await until(ended, "edge-1's stream end stored", 10)
            cut_at = time.monotonic()
            (site / "index.html").write_text("four")
            pushing = asyncio.ensure_future(push(fleet, site, cache, "--json"))

            async def others_serve() -> bool:
                st = await status(fleet, 4) if fleet.store.has_release(fleet.env, "blog", 4) else None
                return st is not None and names(st["serving"]) == ["edge-0", "edge-2"]
            await until(others_serve, "edge-0 and edge-2 serving release 4", 10)
            st = await status(fleet, 4)
            assert names(st["pending"]) == ["edge-1"] and st["disconnected"] == []
            assert time.monotonic() - cut_at < 4  # still within the grace: otherwise this proves nothing
            edges.cuts["edge-1"].resume()
            code, out, err, _ = await pushing
            assert code == 0, err
            result = json.loads(out)
            assert (result["release"], result["serving"], result["disconnected"]) == (4, EDGES, [])
            assert node(fleet, "edge-1").stream_ended_at is None  # its new stream cleared the end
        finally:
            await edges.close()
