"""Active checks of every origin of every service, from the control plane.

Rules:
1. Each round of the health monitor (``owncdn.control.health``), every origin of
   every pull or redirect service in the latest version of every environment gets
   one request: ``health_check.method`` (HEAD by default) of ``health_check.path``
   under the origin URL's path prefix, with ``Host`` the check's ``host`` or the
   service's first hostname. TLS is verified as the edges do (``tls_verify``).
2. It passes on a status below ``health_check.healthy_below`` (500: a 404 still
   shows a server that answers) within the round's timeout; anything else fails
   with the reason kept.
3. The same hysteresis as edges (``owncdn.core.routing.health``): down after
   ``fall`` failures in a row, up after ``rise`` successes; a starved monitor's
   timeouts are not counted. Each flip raises one alert.
4. The state lives in this process's memory: every control-plane replica checks
   and keeps its own view (and alerts on its own flips). An origin removed from
   the config is forgotten at the next round.
5. Several services naming the same origin URL are checked once per service,
   since their paths and hosts may differ.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from owncdn.core.alerts import Alert, health_alert
from owncdn.core.routing.health import Hysteresis, Starvation, counted
from owncdn.tlstrust import unverified, verified

__all__ = ["OriginHealth", "OriginMonitor", "OriginTarget"]


@dataclass(frozen=True)
class OriginTarget:
    env: str
    service: str
    origin: str
    url: str
    method: str
    host: str
    healthy_below: int
    verify: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.env, self.service, self.origin)


@dataclass
class OriginHealth:
    target: OriginTarget
    state: Hysteresis
    checked_at: float | None = None
    changed_at: float | None = None
    error: str = ""
    status: int | None = None
    ms: float | None = None

    @property
    def healthy(self) -> bool:
        return self.state.healthy


def targets(store) -> list[OriginTarget]:
    """Rule 1, from the latest version of every environment."""
    out = []
    for env in store.version_envs():
        version = store.latest_version(env)
        if version is None:
            continue
        for svc in version.snapshot.get("services", []):
            check = svc.get("health_check") or {}
            if svc.get("mode", "pull") == "push" or not check.get("enabled", True):
                continue
            path = check.get("path", "/")
            host = check.get("host") or (svc.get("hostnames") or [""])[0]
            for origin in svc.get("origins", []):
                base = origin["url"].rstrip("/")
                out.append(OriginTarget(env, svc["name"], origin["url"], base + path, check.get("method", "HEAD"),
                                        host, int(check.get("healthy_below", 500)), origin.get("tls_verify", True)))
    return out


class OriginMonitor:
    def __init__(self, store, settings, alert: Callable[[Alert], None] = lambda a: None) -> None:
        self.store = store
        self.settings = settings
        self.alert = alert
        self.states: dict[tuple[str, str, str], OriginHealth] = {}

    def __repr__(self) -> str:
        down = sum(not h.healthy for h in self.states.values())
        return f"<OriginMonitor origins={len(self.states)} down={down}>"

    def health(self, env: str | None = None) -> list[OriginHealth]:
        return [h for key, h in sorted(self.states.items()) if env is None or key[0] == env]

    async def round(self, timeout: float, checker: Starvation = Starvation()) -> list[OriginHealth]:
        """Check every origin once (Rules 1-4); returns those whose health flipped."""
        found = await asyncio.to_thread(targets, self.store)
        keys = {t.key for t in found}
        for key in [k for k in self.states if k not in keys]:
            del self.states[key]
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, verify=verified()) as checked, \
                httpx.AsyncClient(timeout=timeout, limits=limits, verify=unverified()) as unchecked:
            results = await asyncio.gather(*(self.check(checked if t.verify else unchecked, t, timeout)
                                             for t in found))
        flipped = []
        now = time.time()
        s = self.settings
        for target, (ok, timed_out, status, ms, error) in zip(found, results):
            entry = self.states.get(target.key)
            if entry is None or entry.target != target:
                entry = self.states[target.key] = OriginHealth(target, Hysteresis(s.fall, s.rise), changed_at=now)
            entry.status, entry.ms, entry.error = status, ms, error
            if not counted(ok, timed_out, checker):  # Rule 3: a starved monitor's timeout
                continue
            entry.checked_at = now
            before = entry.healthy
            if entry.state.observe(ok) != before:
                entry.changed_at = now
                flipped.append(entry)
                self.alert(health_alert("origin", target.env, f"{target.origin} of service {target.service}",
                                        entry.healthy, error))
        return flipped

    async def check(self, http: httpx.AsyncClient, target: OriginTarget, timeout: float):
        """(ok, timed out, status, ms, error) of one request (Rules 1-2)."""
        started = time.perf_counter()
        try:
            resp = await http.request(target.method, target.url, timeout=timeout,
                                      headers={"Host": target.host, "User-Agent": "owncdn-health",
                                               "Connection": "close"})
        except httpx.TimeoutException:
            return False, True, None, None, f"timeout after {timeout:g}s"
        except httpx.ConnectError as exc:
            from owncdn.control.health import _reason

            return False, False, None, None, f"cannot connect: {_reason(exc)}"
        except (httpx.HTTPError, OSError, ValueError) as exc:
            return False, False, None, None, f"{type(exc).__name__}: {exc}"[:200]
        ms = round((time.perf_counter() - started) * 1000, 2)
        if resp.status_code < target.healthy_below:
            return True, False, resp.status_code, ms, ""
        return False, False, resp.status_code, ms, f"HTTP {resp.status_code}"
