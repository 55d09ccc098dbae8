"""The edge's health path: ``GET /.well-known/owncdn/health``, for any Host.

The control plane's monitor (``owncdn.control.health``) asks it on the public
listener, so the answer comes through the same parser and request handling as a
visitor's request: an edge that cannot parse, or whose loop is stuck, fails it.

Rules:
1. 200 when the edge can serve: it is not draining and has at least one service.
2. 503 with the reason otherwise: ``draining`` (shutting down: the DNS should send
   visitors elsewhere first), ``no services`` (no config version applied yet).
3. The answer is never cached (``Cache-Control: no-store``) and names the edge,
   like every response the edge makes up.
4. The body is JSON: ``status``, ``why``, ``edge``, ``location``, ``load`` (event-loop
   lag, CPU steal, load average: ``edge/load.py``), ``responses`` (total and 5xx
   since start, from the metrics' counters: the monitor turns them into an error
   rate), ``admin`` (HOST:PORT of the admin listener, or null), which the control
   plane uses for ``owncdn explain`` and ``owncdn probe``, and ``disk`` (the free and
   total bytes of the state directory's disk, or null: ``diskspace.py``).
"""

from __future__ import annotations

HEALTH_PATH = "/.well-known/owncdn/health"


def health_status(edge) -> tuple[int, str]:
    """(status, why) for the health path (Rules 1-2)."""
    if getattr(edge, "draining", False):
        return 503, "draining"
    if not edge.services:
        return 503, "no services: no config version applied yet"
    return 200, f"healthy: {len(edge.services)} service(s)"


def is_health_request(req) -> bool:
    return req.target == HEALTH_PATH and req.method in ("GET", "HEAD")


def health_body(edge, status: int, why: str) -> dict:
    """Rule 4: the JSON the monitor reads."""
    from owncdn.edge.diskspace import disk_report
    from owncdn.edge.load import load_report

    total = errors = 0
    for (service, code, _), pair in edge.metrics.served.items():
        if service == "-":  # unknown hosts, bad requests and this path itself
            continue
        total += pair[0]
        if code >= 500:
            errors += pair[0]
    return {"status": "ok" if status == 200 else "unavailable", "why": why, "edge": edge.edge_id,
            "location": edge.location, "load": load_report(edge).as_dict(),
            "responses": {"total": total, "errors": errors},
            "admin": getattr(edge, "admin_address", None), "disk": disk_report(edge)}


def answer_health(edge, req) -> None:
    """Answer the health path (called from ``Edge.handle``)."""
    import orjson

    from owncdn.core.http.headers import format_http_date
    from owncdn.edge.responses import status_line

    status, why = health_status(edge)
    if req.cache == "-":
        req.cache = "PASS"
    body = orjson.dumps(health_body(edge, status, why)) + b"\n"
    head = status_line(status) + (
        "Content-Type: application/json\r\nContent-Length: %d\r\nCache-Control: no-store\r\n"
        "Date: %s\r\nVia: 1.1 %s\r\n" % (len(body), format_http_date(edge.clock.time()), edge.via_name)
    ).encode() + edge.static_fields
    edge._send(req, status, head, b"", body)


async def drain(edge, seconds: float, interrupt) -> None:
    """Rule 2's draining: answer 503 on the health path, keep serving visitors for
    `seconds` (so the monitor takes this edge out of DNS and resolvers' caches
    expire), or until `interrupt` (an asyncio.Event: a second signal) is set."""
    import sys

    from owncdn.waiting import wait_event

    edge.draining = True
    print(f"owncdn edge: draining for {seconds:g}s (health path answers 503); signal again to stop now",
          file=sys.stderr, flush=True)
    await wait_event(interrupt, seconds)
