"""Following the control plane: register, stream versions and purges, apply, report.

The node is an edge (`Edge`), or anything with `apply_config(config)` and
`purge(spec) -> int` (the DNS server's `DnsNode`).

Rules:
1. Identity: `<state>/node.json` holds the node id and its node token. Without it the
   agent registers with the bootstrap token and saves what it gets.
2. Last-known-good: `<state>/snapshot.json` (environment, version number, YAML source)
   is written atomically after a version is applied, and read at start before the
   control plane is asked anything, so an edge restarts into its last config even
   while the control plane is down.
3. One server-sent-events stream. Its query names the version running and the last
   purge seen, so after a reconnect nothing is missed and nothing is applied twice.
   Reconnects back off from 0.1 s to 5 s. A stream that ended by itself reconnects at
   once, unless it lasted under ``QUICK_END`` seconds: a control plane that turns the
   stream away as it opens (its node deleted meanwhile, its store failing) is backed
   off from too, rather than asked again about 25 times a second by every edge.
4. A version that does not parse or apply here (a missing secret, say) is rejected
   with the reason, and the edge keeps serving the old one.
5. Purges are applied in order and acknowledged with this node's time to apply them.
6. Reports that could not be sent are sent again after the next connect.
7. Every other event is a state channel (`owncdn.control.api.channels`): it goes to
   the handler registered under its name in `handlers` (`async handler(agent, http,
   data)`), whose failure is logged and does not end the stream. Channel events are
   idempotent and resent in full on every reconnect, followed by `channel_keys`
   (every key of a channel), given to the channel's pruner in `pruners` (`async
   pruner(agent, http, keys)`) to drop what was deleted while the node was away.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

import httpx
import orjson

from owncdn.client.unreachable import https_instead
from owncdn.configfile import make_resolver
from owncdn.core.config import ConfigError, parse_config
from owncdn.edge.purge import PurgeError, run_purge

if TYPE_CHECKING:
    from owncdn.edge.app import Edge

READ_TIMEOUT = 35.0  # the control plane pings every 10 s
QUICK_END = 1.0  # seconds: a stream that ended sooner is backed off from (Rule 3)


def load_snapshot(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "snapshot.json").read_text())
    except (OSError, ValueError):
        return None


def write_atomically(path: Path, data: dict, sync: bool = True) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class SyncAgent:
    def __init__(self, edge: "Edge", control: str, bootstrap_token: str | None, state_dir: Path, *,
                 name: str, location: str, env: str, address: str, kind: str = "edge") -> None:
        self.edge = edge
        self.control = control.rstrip("/")
        self.bootstrap_token = bootstrap_token
        self.state_dir = state_dir
        self.name, self.location, self.env, self.address, self.kind = name, location, env, address, kind
        self.node_id: str | None = None
        self.token: str | None = None
        self.version = 0
        self.purge_after = 0
        self.connected = asyncio.Event()
        self.unsent: list[tuple[str, dict]] = []
        # perf_counter() when the control plane accepted each report / purge ack
        self.reported_at: dict[int, float] = {}
        self.purge_acked_at: dict[int, float] = {}
        self.purge_seen_at: dict[int, float] = {}
        self.resolve = make_resolver(state_dir, os.environ)
        self.handlers: dict[str, Callable[["SyncAgent", httpx.AsyncClient, dict], Awaitable[None]]] = {}
        self.pruners: dict[str, Callable[["SyncAgent", httpx.AsyncClient, set], Awaitable[None]]] = {}
        self.task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<SyncAgent {self.name} node={self.node_id} version={self.version} purge_after={self.purge_after}>"

    # -- state on disk ---------------------------------------------------------------
    def restore(self) -> dict | None:
        """Identity and last-known-good config from disk; returns the snapshot if any."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            node = json.loads((self.state_dir / "node.json").read_text())
            self.node_id, self.token = node["node_id"], node["token"]
            self.purge_after = int(node.get("purge_after", 0))
        except (OSError, ValueError, KeyError):
            pass
        snapshot = load_snapshot(self.state_dir)
        if snapshot is not None and snapshot.get("env") == self.env:
            self.version = int(snapshot["number"])
            return snapshot
        return None

    def _save_node(self, sync: bool = True) -> None:
        write_atomically(self.state_dir / "node.json",
                         {"node_id": self.node_id, "token": self.token, "purge_after": self.purge_after}, sync)

    # -- the loop ----------------------------------------------------------------------
    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        delay = 0.1
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=READ_TIMEOUT)) as http:
            while True:
                try:
                    if self.token is None:
                        await self._register(http)
                    await self._flush_reports(http)
                    opened = perf_counter()
                    await self._stream(http)
                    if perf_counter() - opened >= QUICK_END:
                        delay = 0.1
                        continue
                    _warn(f"control plane {self.control}: the event stream ended as it opened; "
                          f"retrying in {delay:.1f}s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    self.connected.clear()
                    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401:
                        self.token = None  # the node token was revoked: register again
                    hint = ""
                    if isinstance(exc, (httpx.TransportError, OSError)):  # no answer: perhaps TLS is wanted
                        https = await asyncio.to_thread(https_instead, self.control, exc)  # client/unreachable.py
                        hint = f"; it speaks HTTPS there: use {https}" if https else ""
                    _warn(f"control plane {self.control}: {(str(exc) or type(exc).__name__).rstrip('.')}"
                          f"{hint}; retrying in {delay:.1f}s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    async def _register(self, http: httpx.AsyncClient) -> None:
        if not self.bootstrap_token:
            raise ValueError("no node token saved and no bootstrap token given (--token)")
        resp = await http.post(f"{self.control}/v1/nodes/register",
                               headers={"Authorization": f"Bearer {self.bootstrap_token}"},
                               json={"name": self.name, "kind": self.kind, "location": self.location,
                                     "env": self.env, "address": self.address})
        resp.raise_for_status()
        body = resp.json()
        self.node_id, self.token = body["node_id"], body["token"]
        self._save_node()

    async def _stream(self, http: httpx.AsyncClient) -> None:
        url = f"{self.control}/v1/nodes/{self.node_id}/events"
        params = {"version": self.version, "purge_after": self.purge_after}
        if self.address:
            params["address"] = self.address  # re-registered elsewhere (a new port) keeps its id
        async with http.stream("GET", url, params=params, headers=self._auth()) as resp:
            resp.raise_for_status()
            self.connected.set()
            event, data = "message", []
            async for line in resp.aiter_lines():
                if line.startswith(":"):
                    continue
                if line == "":
                    if data:
                        await self._on_event(http, event, orjson.loads("\n".join(data)))  # a release: ~125 KB
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
        self.connected.clear()

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    async def _on_event(self, http: httpx.AsyncClient, event: str, data: dict) -> None:
        if event == "config":
            await self._report(http, *self.apply_version(data))
        elif event == "purge":
            t0 = perf_counter()
            self.purge_seen_at[int(data["id"])] = t0
            try:
                purge = getattr(self.edge, "purge", None)  # a node that is not an edge
                removed = purge(data["spec"]) if purge is not None else run_purge(self.edge, data["spec"])
            except PurgeError as exc:
                _warn(f"purge {data['id']}: {exc}")
                removed = 0
            ms = (perf_counter() - t0) * 1000
            self.purge_after = max(self.purge_after, int(data["id"]))
            self._save_node(sync=False)  # losing it only replays purges: no fsync on this path
            await self._send(http, f"/v1/nodes/{self.node_id}/purges/{data['id']}/ack",
                             {"ms": round(ms, 3), "removed": removed})
            self.purge_acked_at[int(data["id"])] = perf_counter()
        elif event == "channel_keys":
            if (pruner := self.pruners.get(data.get("channel"))) is not None:
                try:
                    await pruner(self, http, set(data.get("keys") or ()))
                except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                    _warn(f"{event} {data.get('channel')}: {exc or type(exc).__name__}")
        elif (handler := self.handlers.get(event)) is not None:
            try:
                await handler(self, http, data)
            except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                _warn(f"{event} {data.get('key')}: {exc or type(exc).__name__}")

    def apply_version(self, data: dict) -> tuple[int, str, str]:
        """Parse and switch to a version; (number, "applied" | "rejected", reason)."""
        number = int(data["number"])
        try:
            config = parse_config(data["source"], f"{self.env} v{number}", self.resolve, env=self.env)
            self.edge.apply_config(config)
        except ConfigError as exc:
            reason = "; ".join(str(p) for p in exc.problems[:5])
            _warn(f"rejected version {number}: {reason}")
            return number, "rejected", reason
        except (ValueError, OSError) as exc:
            return number, "rejected", str(exc)
        self.version = number
        write_atomically(self.state_dir / "snapshot.json",
                         {"env": self.env, "number": number, "source": data["source"]})
        return number, "applied", ""

    async def _report(self, http: httpx.AsyncClient, number: int, status: str, reason: str) -> None:
        await self._send(http, f"/v1/nodes/{self.node_id}/report",
                         {"version": number, "status": status, "reason": reason})
        self.reported_at[number] = perf_counter()

    async def _send(self, http: httpx.AsyncClient, path: str, body: dict) -> None:
        try:
            resp = await http.post(self.control + path, json=body, headers=self._auth())
            resp.raise_for_status()
        except httpx.HTTPError:
            self.unsent.append((path, body))
            raise

    async def _flush_reports(self, http: httpx.AsyncClient) -> None:
        while self.unsent:
            path, body = self.unsent[0]
            resp = await http.post(self.control + path, json=body, headers=self._auth())
            if 400 <= resp.status_code < 500 and resp.status_code != 401:
                _warn(f"dropped a report the control plane refuses ({resp.status_code}): {path}")
            else:
                resp.raise_for_status()
            self.unsent.pop(0)


def _warn(message: str) -> None:
    print(f"owncdn edge: {message}", file=sys.stderr, flush=True)
