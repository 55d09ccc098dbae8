"""The edge health monitor: active checks through each edge's real request path.

Every ``interval`` seconds the control plane asks every registered edge node
(``kind == "edge"``) for ``GET /.well-known/owncdn/health`` on the public
listener it registered (``address``, HOST:PORT). The edge answers that path for
any Host, through its HTTP parser and request handling (``owncdn.edge.health``):
200 when it can serve, 503 when it cannot (draining, no services yet).

Rules:

1. A check passes on a 200 within ``timeout`` seconds, on a new connection
   (``Connection: close``), so an edge whose listener stopped accepting fails even
   if an old connection would still be answered. Anything else fails, and the
   reason is kept (``HTTP 503: draining``, ``timeout after 1s``, ``connection
   refused``).
2. Results go through the hysteresis of ``owncdn.core.routing.health`` into the
   store (``Store.record_checks``): an edge goes down after ``fall`` failed checks in
   a row (default 3) and comes back after ``rise`` good ones (default 2). With the
   defaults, a dead edge leaves the DNS answers within about 2 s + 2 x 0.5 s (Rule 9)
   + the DNS TTL.
3. When an edge's health flips, ``on_change`` runs (the API wakes the event
   streams, so DNS nodes get the ``health`` channel at once); other replicas' flips
   reach streams by their once-a-second re-read of the store.
4. An edge registered at ``0.0.0.0`` / ``::`` is checked on the loopback address
   (it is on this machine, as with ``owncdn up``); register a routable address for
   edges on other machines.
5. The ``health`` state channel sends DNS nodes the edges of their environment:
   ``{"key": "edges", "edges": [{name, location, address, healthy}, ...]}``, resent
   only when one of those fields changes (not on every check).
6. The edge's JSON answer (``owncdn.edge.health`` Rule 4) is kept per edge in
   ``edges``: its load (loop lag, CPU steal, load average), its admin address and
   its response counters; the counters' growth feeds the error rate of its
   environment (``owncdn.core.alerts`` Rules 2-3).
7. The monitor measures its own event-loop lag and CPU steal; a starved monitor
   widens its timeouts and does not count its own timeouts against an edge
   (``owncdn.core.routing.health`` Rules 5-7).
8. Each round also checks the origins of every service (``owncdn.control.origins``),
   and every flip of an edge or an origin, and every change of an environment's
   error rate, raises one alert (``owncdn.control.alerts``).
9. An edge whose last counted check disagrees with its health (a healthy edge that
   failed, a down edge that answered) is re-checked every ``fast_interval`` seconds
   (default 0.5) until it flips or the check agrees again, as HAProxy's
   ``fastinter`` does: with the defaults a dead edge is out of DNS about 1 s after
   the first failed check instead of about 4 s, and the same hysteresis still
   decides. An edge whose event stream to this control plane ends (``suspect``, from
   ``api/events.py``) is checked at once: a killed process is noticed by its
   closed connection, and only checks ever count.
10. The disk an edge reports (its state directory's: ``edge/diskspace.py``) raises
   one ``edge_disk_low`` alert when less than 5% of it is free and one
   ``edge_disk_normal`` when 10% is free again (``owncdn.core.alerts`` Rule 6), and
   ``GET /v1/health/edges`` shows it; each full round also looks at the disk of this
   control plane's blob store (a directory: ``control_disk_low`` / ``_normal``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from owncdn.control.store import CheckResult, EdgeHealthRecord, Store, StoreError
from owncdn.core.alerts import DiskWatch, ErrorRateWatch, counter_delta, health_alert
from owncdn.core.routing import DEFAULT_FALL, DEFAULT_RISE
from owncdn.core.routing.health import Starvation, counted, widened_timeout
from owncdn.core.routing.load import LoadMeter, LoadReport
from owncdn.waiting import wait_event

__all__ = ["HEALTH_PATH", "HealthChannel", "HealthMonitor", "HealthSettings", "check_url"]

log = logging.getLogger("owncdn.control.health")

HEALTH_PATH = "/.well-known/owncdn/health"


@dataclass(frozen=True)
class HealthSettings:
    """How the monitor checks edges (``owncdn control --health-*`` flags)."""

    interval: float = 2.0
    """Seconds between rounds of checks."""
    fast_interval: float = 0.5
    """Seconds between re-checks of an edge in transition (Rule 9)."""
    timeout: float = 1.0
    """Seconds a check may take (connect + answer) before it fails."""
    fall: int = DEFAULT_FALL
    """Consecutive failed checks that take a healthy edge down."""
    rise: int = DEFAULT_RISE
    """Consecutive good checks that bring a down edge back."""
    enabled: bool = True
    origins: bool = True
    """Check the origins of every service too (``owncdn.control.origins``)."""
    alert_webhooks: tuple = ()
    """``owncdn.control.acme.notify.Webhook`` s told about alerts (``--alert-webhook``)."""
    alert_error_rate: float = 0.05
    """Share of 5xx responses over a minute that raises an alert (``--alert-error-rate``)."""

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0 or self.fast_interval <= 0:
            raise ValueError(f"health intervals and timeout must be positive, not {self.interval} / "
                             f"{self.fast_interval} / {self.timeout}")
        if self.fall < 1 or self.rise < 1:
            raise ValueError(f"health fall and rise must be at least 1, not {self.fall} / {self.rise}")


def check_url(address: str) -> str:
    """The health URL of an edge registered at ``address`` (HOST:PORT; Rule 4)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        host = "::1" if ip.version == 6 else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{HEALTH_PATH}"


@dataclass
class EdgeInfo:
    """What an edge said in its last good answer (Rule 6)."""

    load: LoadReport
    admin: str | None
    responses: int
    errors: int
    disk: dict | None = None
    """{path, free, total} of the edge's state directory's disk (``edge/diskspace.py``)."""
    at: float = field(default_factory=time.time)
    delta: tuple[int, int] | None = None
    """(responses, errors) since the previous answer, until the error rate takes it."""


@dataclass(frozen=True)
class EdgeCheck:
    result: CheckResult
    timed_out: bool = False
    info: EdgeInfo | None = None


class HealthMonitor:
    """``await monitor.run()`` until cancelled; ``await monitor.round()`` runs one round."""

    def __init__(self, store: Store, settings: HealthSettings = HealthSettings(),
                 on_change: Callable[[], None] = lambda: None, alerts=None, blob_root=None) -> None:
        from owncdn.control.origins import OriginMonitor

        self.store = store
        self.settings = settings
        self.on_change = on_change
        self.alerts = alerts  # owncdn.control.alerts.Alerts, or None
        self.rounds = 0
        self.rechecks = 0  # Rule 9: re-checks of a few edges between rounds
        self.meter = LoadMeter()  # this monitor's own starvation (Rule 7)
        self.edges: dict[str, EdgeInfo] = {}
        self.origins = OriginMonitor(store, settings, self._alert)
        self.error_rates: dict[str, ErrorRateWatch] = {}
        self.disk_watches: dict[str, DiskWatch] = {}  # Rule 10, by node id
        self.blob_root = blob_root  # Rule 10: the directory blob store's root (None: S3, or none here)
        self.own_disk = DiskWatch("-", None)
        self.uncounted = 0  # checks not counted because this monitor was starved
        self.last_timeout = settings.timeout
        self.unsettled: set[str] = set()  # Rule 9: edges whose last check disagreed with their health
        self.suspects: set[str] = set()  # Rule 9: edges whose event stream ended
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        s = self.settings
        return (f"<HealthMonitor every {s.interval}s (unsettled every {s.fast_interval}s) fall={s.fall} "
                f"rise={s.rise} rounds={self.rounds} rechecks={self.rechecks}>")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_keepalive_connections=0)
        meter = loop.create_task(_measure(self.meter), name="health-monitor-load")
        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout, limits=limits) as http:
                self._loop, self._wake = loop, asyncio.Event()
                while True:
                    due = loop.time() + self.settings.interval
                    await self._guarded(self.round(http))
                    await self._recheck_until(http, due)
        finally:
            meter.cancel()

    async def _guarded(self, checks) -> None:
        try:
            await checks
        except StoreError as exc:  # the database is away: try again next round
            log.warning("edge health: %s", exc)

    async def _recheck_until(self, http: httpx.AsyncClient, due: float) -> None:
        """Until the next round is due, re-check unsettled edges every fast_interval
        and suspects at once (Rule 9)."""
        loop = asyncio.get_running_loop()
        while (left := due - loop.time()) > 0:
            wait = min(left, self.settings.fast_interval) if self.unsettled else left
            if not self.suspects:
                self._wake.clear()
                await wait_event(self._wake, wait)
            targets = self.unsettled | self.suspects
            self.suspects.clear()
            if targets and loop.time() < due:
                await self._guarded(self.round(http, only=targets))

    def suspect(self, node_id: str) -> None:
        """The edge's event stream ended: check it now (Rule 9). Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def mark() -> None:
            self.suspects.add(node_id)
            if self._wake is not None:
                self._wake.set()
        loop.call_soon_threadsafe(mark)

    def starvation(self) -> Starvation:
        report = self.meter.report()
        return Starvation(report.loop_lag, report.steal)

    async def round(self, http: httpx.AsyncClient, only: set[str] | None = None) -> list[EdgeHealthRecord]:
        """Check every edge (and origin) once, or only the edges in ``only`` (Rule 9);
        returns the edges whose health flipped."""
        checker = self.starvation()
        timeout = self.last_timeout = widened_timeout(self.settings.timeout, checker)  # Rule 7
        edges = await asyncio.to_thread(self.store.edge_health)
        if only is not None:
            edges = [e for e in edges if e.node_id in only]
        else:
            for gone in set(self.edges) - {e.node_id for e in edges}:
                del self.edges[gone]  # deleted nodes
                self.disk_watches.pop(gone, None)
        origins = self._origins(timeout, checker) if self.settings.origins and only is None else _nothing()
        checks, _ = await asyncio.gather(asyncio.gather(*(self.check(http, edge, timeout) for edge in edges)),
                                         origins)
        healthy = {e.node_id: e.healthy for e in edges}
        results = []
        for check in checks:
            if counted(check.result.ok, check.timed_out, checker):
                results.append(check.result)
            else:
                self.uncounted += 1
            if check.info is not None:
                self._observe(check.result.node_id, check.info)
        s = self.settings
        gap = (s.interval if only is None else s.fast_interval) / 2
        flipped = await asyncio.to_thread(self.store.record_checks, results, fall=s.fall, rise=s.rise,
                                          min_gap=gap)
        # Rule 9: what disagrees with its health and did not flip is looked at again soon
        settled = {e.node_id for e in flipped}
        for result in results:
            node = result.node_id
            if result.ok != healthy[node] and node not in settled:
                self.unsettled.add(node)
            else:
                self.unsettled.discard(node)
        if only is None:
            self.unsettled &= set(healthy)  # deleted nodes
            self.rounds += 1
        else:
            self.rechecks += 1
        for edge in flipped:
            state = "up" if edge.healthy else f"DOWN ({edge.error})"
            log.warning("edge %s (%s, %s) is %s", edge.name, edge.location, edge.address, state)
            self._alert(health_alert("edge", edge.env, f"{edge.name} ({edge.location}, {edge.address})",
                                     edge.healthy, edge.error))
        self._error_rates(edges)
        self._disks(edges)
        if only is None:
            self._own_disk()
        if flipped:
            self.on_change()
        return flipped

    async def _origins(self, timeout: float, checker: Starvation) -> None:
        """The origins' round; its trouble never stops the edges' checks."""
        try:
            await self.origins.round(timeout, checker)
        except (StoreError, KeyError, TypeError, ValueError) as exc:
            log.warning("origin health: %s: %s", type(exc).__name__, exc)

    def _alert(self, alert) -> None:
        if self.alerts is not None:
            self.alerts.raise_alert(alert)

    def _observe(self, node_id: str, info: EdgeInfo) -> None:
        """Rule 6: keep the answer; remember the counters' growth for the error rate."""
        before = self.edges.get(node_id)
        if info.admin and (before is None or before.admin != info.admin):
            self.on_change()  # the `admin` channel has a token to send (control/diagnostics.py)
        info.delta = (counter_delta(before.responses if before else None, info.responses),
                      counter_delta(before.errors if before else None, info.errors))
        self.edges[node_id] = info

    def _error_rates(self, edges: list[EdgeHealthRecord]) -> None:
        """Rule 6: this round's growth of every environment's counters, into its watch."""
        if self.alerts is None:
            return
        now = time.time()
        sums: dict[str, list[int]] = {}
        for edge in edges:
            info = self.edges.get(edge.node_id)
            pair = sums.setdefault(edge.env, [0, 0])
            if info is not None and getattr(info, "delta", None) is not None:
                pair[0] += info.delta[0]
                pair[1] += info.delta[1]
                info.delta = None  # counted once
        for env, (responses, errors) in sums.items():
            watch = self.error_rates.get(env)
            if watch is None:
                a = self.alerts
                watch = self.error_rates[env] = ErrorRateWatch(env, a.error_rate, a.error_window, a.error_min_requests)
            alert = watch.observe(now, responses, errors)
            if alert is not None:
                self._alert(alert)

    def _disks(self, edges: list[EdgeHealthRecord]) -> None:
        """Rule 10: each edge's disk, into its watch."""
        if self.alerts is None:
            return
        for edge in edges:
            info = self.edges.get(edge.node_id)
            if info is None or info.disk is None:
                continue
            watch = self.disk_watches.get(edge.node_id)
            if watch is None:
                watch = self.disk_watches[edge.node_id] = DiskWatch(edge.env, edge.name)
            alert = watch.observe(info.disk["free"], info.disk["total"], info.disk["path"])
            if alert is not None:
                self._alert(alert)

    def _own_disk(self) -> None:
        """Rule 10: the disk of this control plane's blob store."""
        if self.alerts is None or self.blob_root is None:
            return
        try:
            st = os.statvfs(self.blob_root)
        except OSError:
            return
        alert = self.own_disk.observe(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, str(self.blob_root))
        if alert is not None:
            self._alert(alert)

    async def check(self, http: httpx.AsyncClient, edge: EdgeHealthRecord, timeout: float | None = None) -> EdgeCheck:
        """One check of one edge (Rule 1)."""
        timeout = self.settings.timeout if timeout is None else timeout
        try:
            url = check_url(edge.address)
            resp = await http.get(url, headers={"Host": "owncdn-health", "Connection": "close",
                                                "User-Agent": "owncdn-health"}, timeout=timeout)
        except httpx.TimeoutException:
            return EdgeCheck(CheckResult(edge.node_id, False, f"timeout after {timeout:g}s"), timed_out=True)
        except httpx.ConnectError as exc:
            return EdgeCheck(CheckResult(edge.node_id, False, f"cannot connect: {_reason(exc)}"))
        except (httpx.HTTPError, ValueError, OSError) as exc:
            return EdgeCheck(CheckResult(edge.node_id, False, f"{type(exc).__name__}: {_reason(exc)}"))
        info, why = _answer(resp)
        if resp.status_code == 200:
            return EdgeCheck(CheckResult(edge.node_id, True), info=info)
        return EdgeCheck(CheckResult(edge.node_id, False, f"HTTP {resp.status_code}: {why}"[:200]), info=info)


def _answer(resp: httpx.Response) -> tuple[EdgeInfo | None, str]:
    """The edge's JSON health answer (``owncdn.edge.health`` Rule 4), and why."""
    try:
        data = resp.json()
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        lines = resp.text.splitlines()
        return None, lines[1] if len(lines) > 1 else resp.reason_phrase
    counts = data.get("responses") if isinstance(data.get("responses"), dict) else {}
    load = LoadReport.from_dict(data["load"] if isinstance(data.get("load"), dict) else {})
    admin = data.get("admin") if isinstance(data.get("admin"), str) else None
    info = EdgeInfo(load, admin, _int(counts.get("total")), _int(counts.get("errors")), _disk(data.get("disk")))
    return info, str(data.get("why") or resp.reason_phrase)


def _disk(value) -> dict | None:
    """The edge's ``disk`` report, when it is one."""
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return None
    free, total = _int(value.get("free")), _int(value.get("total"))
    return {"path": value["path"][:500], "free": free, "total": total} if total else None


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


async def _nothing() -> None:
    return None


async def _measure(meter: LoadMeter, interval: float = 0.5) -> None:
    """Rule 7: this process's loop lag and CPU steal, twice a second."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        try:
            with open("/proc/stat") as f:
                stat = f.read(4096)
        except OSError:
            stat = None
        try:
            average = os.getloadavg()
        except OSError:
            average = None
        meter.tick(due, loop.time(), stat, average)


def _reason(exc: BaseException) -> str:
    """The most specific reason in the exception chain (httpx wraps the OSError)."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is short; never loop on a cyclic one
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


class HealthChannel:
    """The ``health`` state channel (Rule 5): edges and their health, for DNS nodes."""

    name = "health"

    def read(self, ctx, node) -> dict:
        if node.kind != "dns":
            return {}
        edges = [{"name": e.name, "location": e.location, "address": e.address, "healthy": e.healthy}
                 for e in ctx.store.edge_health(node.env)]
        if not edges:
            return {}  # nothing to say (after edges existed, the stream sends "deleted")
        revision = tuple((e["name"], e["location"], e["address"], e["healthy"]) for e in edges)
        return {"edges": (revision, {"edges": edges})}
