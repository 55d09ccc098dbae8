"""Asking the edges: cache state of a URL (``owncdn explain``) and probes (``owncdn probe``).

Rules:
1. The control plane reaches an edge's admin listener at the address the edge put in
   its last health answer (``owncdn.edge.health`` Rule 4, kept by the monitor in
   ``HealthMonitor.edges``). An admin listener bound to ``0.0.0.0`` / ``::`` is
   reached at the host the edge registered (as the health check is). An edge whose
   admin address is not known yet (no admin listener, not checked yet, or a replica
   with ``--no-health``) is listed with the reason.
2. Probes need a token on the edge (``owncdn.edge.adminapi`` Rule 3): the ``admin``
   state channel sends each edge ``HMAC-SHA256(key, node id)``, and the fan-out
   presents the same value. The key is ``OWNCDN_ADMIN_KEY`` (hex or text) when set,
   which every replica must share; otherwise a random key of this process (the
   edges get the new value when they reconnect after a restart).
3. Fan-out runs against every edge of the environment at once, each with its own
   timeout; one slow or dead edge never holds up the others' answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import os

import httpx

from owncdn.tlstrust import verified

__all__ = ["AdminChannel", "admin_key", "admin_token", "admin_url", "fan_out"]


def admin_key() -> bytes:
    """Rule 2."""
    text = os.environ.get("OWNCDN_ADMIN_KEY", "")
    return text.encode() if text else os.urandom(32)


def admin_token(key: bytes, node_id: str) -> str:
    return hmac.new(key, f"owncdn-admin:{node_id}".encode(), hashlib.sha256).hexdigest()


def admin_url(admin: str, registered: str) -> str:
    """``http://HOST:PORT`` of an admin listener (Rule 1)."""
    host, _, port = admin.rpartition(":")
    host = host.strip("[]")
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        host = registered.rpartition(":")[0].strip("[]")
        try:
            if ipaddress.ip_address(host).is_unspecified:
                host = "127.0.0.1"
        except ValueError:
            pass
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class AdminChannel:
    """The ``admin`` state channel: each edge's probe token (Rule 2)."""

    name = "admin"

    def __init__(self, key: bytes) -> None:
        self.key = key

    def read(self, ctx, node) -> dict:
        """Only edges whose admin listener the monitor has seen get a token (nothing
        to probe otherwise)."""
        monitor = getattr(ctx, "health_monitor", None)
        info = monitor.edges.get(node.id) if monitor is not None and node.kind == "edge" else None
        if info is None or not info.admin:
            return {}
        token = admin_token(self.key, node.id)
        return {"token": (hashlib.sha256(token.encode()).hexdigest()[:16], {"token": token})}


async def fan_out(edges, infos: dict, key: bytes, method: str, path: str, *, json=None,
                  timeout: float = 5.0) -> list[dict]:
    """Ask every edge's admin listener (Rules 1 and 3); one dict per edge, in order."""

    async def one(http: httpx.AsyncClient, edge) -> dict:
        base = {"edge": edge.name, "location": edge.location, "healthy": edge.healthy}
        info = infos.get(edge.node_id)
        if info is None or not info.admin:
            return {**base, "error": "admin address unknown: the edge has no admin listener, "
                                     "or the health monitor has not reached it yet"}
        headers = {"Authorization": f"Bearer {admin_token(key, edge.node_id)}"}
        try:
            resp = await http.request(method, admin_url(info.admin, edge.address) + path, json=json,
                                      headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return {**base, "error": f"no answer within {timeout:g}s"}
        except (httpx.HTTPError, OSError) as exc:
            return {**base, "error": f"{type(exc).__name__}: {exc}"[:200]}
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code != 200 or not isinstance(data, dict):
            why = data.get("error") if isinstance(data, dict) else None
            return {**base, "error": f"HTTP {resp.status_code}: {why or resp.text[:200]}"}
        return {**data, **base}

    async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), verify=verified()) as http:
        return list(await asyncio.gather(*(one(http, edge) for edge in edges)))
