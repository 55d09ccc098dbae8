"""The certificate manager: a task of ``owncdn control`` that keeps every certificate valid.

Each round (every ``interval`` seconds, one cheap store read per environment when nothing
changed, or at once when woken by ``wake()``):
1. Read the latest version of every environment; each service that wants a
   certificate (``owncdn.core.certs.wanted``) gets a row in the store.
2. For each issued ACME certificate whose time has come, ask the CA's ARI (RFC 9773)
   for its suggested renewal time (``owncdn.core.certs.renewal`` Rule 2).
3. A certificate expiring within ``acme.expiry_warning`` is reported once (``expiring``).
4. Every certificate that is due (``is_due``) is ordered, ``concurrency`` at a time,
   through ``Issuer`` (which holds the store lease, so replicas never race).
   Success sends ``issued`` (first time) or ``renewed``; a failure records the error,
   backs off exponentially and sends ``failed``.

Rule: nothing here logs a key; log lines name certificates, names, dates and errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from owncdn.core.certs import QuotaExceeded, backoff_seconds, is_due, wanted_certs
from owncdn.core.config import ConfigError, parse_config
from owncdn.waiting import wait_event

from .issuer import Busy, IssueOptions, Issuer
from .notify import Notifier
from .sealing import Sealer

__all__ = ["AcmeManager", "ManagerSettings", "start_manager"]

log = logging.getLogger("owncdn.control.acme")


def _placeholder(kind: str, name: str) -> str:
    return f"<{kind}:{name}>"


class AcmeManager:
    def __init__(self, store, publish: Callable[[], None], *, notifier: Notifier | None = None,
                 options: IssueOptions = IssueOptions(), sealer: Sealer | None = None, interval: float = 1.0,
                 backoff_base: float = 60.0, concurrency: int = 4, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.notifier = notifier or Notifier([])
        self.issuer = Issuer(store, sealer or Sealer.from_env(), publish, options, clock)
        self.interval = interval
        self.backoff_base = backoff_base
        self.clock = clock
        self.limit = asyncio.Semaphore(concurrency)
        self._wanted: dict[tuple[str, int], list] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rounds = 0

    def __repr__(self) -> str:
        return f"<AcmeManager rounds={self.rounds} {self.issuer!r} {self.notifier!r}>"

    def wake(self) -> None:
        """Start a round now (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.round()
            except Exception:  # noqa: BLE001 - a round that failed (store down...) must not end the manager
                log.exception("certificate round failed; trying again in %.0f s", self.interval)
            await wait_event(self._wake, self.interval)
            self._wake.clear()

    async def round(self) -> None:
        self.rounds += 1
        wanted = await asyncio.to_thread(self._sync_wanted)
        certs = await asyncio.to_thread(self.store.list_certs)
        now = self.clock()
        jobs = []
        for cert in certs:
            w = wanted.get(cert.id)
            if cert.issued and w is not None and cert.source == "acme" and (cert.ari_next is None or now >= cert.ari_next):
                cert = await self._ask_ari(cert, w)
            if cert.issued:
                await self._warn_expiring(cert, w, now)
            if w is not None and is_due(cert.source, cert.issued, cert.renew_at, cert.force_renew, cert.next_attempt, now):
                jobs.append(self._issue(cert, w))
        if jobs:
            await asyncio.gather(*jobs)

    # -- steps --------------------------------------------------------------------------
    def _sync_wanted(self) -> dict:
        """Step 1; rows are written when a version is new to this manager (a restart
        writes them again), not every round."""
        out = {}
        for env in self.store.version_envs():
            key = (env, self.store.latest_number(env))
            fresh = key not in self._wanted
            if fresh:
                version = self.store.latest_version(env)
                try:
                    config = parse_config(version.source, f"{env} v{version.number}", _placeholder, env=env)
                    self._wanted[key] = wanted_certs(config, env)
                except ConfigError:
                    self._wanted[key] = []
            for w in self._wanted[key]:
                out[w.id] = w
                if fresh:
                    self.store.want_cert(w.id, w.env, w.names, w.challenge, w.directory)
        return out

    async def _ask_ari(self, cert, w):
        """Step 2."""
        from owncdn.core.certs import renew_at

        ari_start, ask_again = await asyncio.to_thread(self.issuer.renewal_info, cert, w.email)
        when = renew_at(cert.not_before, cert.not_after, ari_start)
        return await asyncio.to_thread(self.store.update_cert, cert.id, renew_at=when, ari_next=ask_again)

    async def _warn_expiring(self, cert, w, now: float) -> None:
        """Step 3."""
        warning = w.expiry_warning if w is not None else 7 * 86400
        if cert.warned_at is None and cert.not_after is not None and cert.not_after - now < warning:
            left = max(0.0, cert.not_after - now) / 86400
            self.notifier.notify("expiring", cert.id, cert.names, f"expires in {left:.1f} days", cert.not_after, now)
            await asyncio.to_thread(self.store.update_cert, cert.id, warned_at=now)

    async def _issue(self, cert, w) -> None:
        """Step 4."""
        async with self.limit:
            first = not cert.issued
            try:
                stored = await asyncio.to_thread(self.issuer.issue, cert.id, w.email, w.orders_per_week,
                                                 self._still_due, self._retry_at)
            except Busy:
                return
            except Exception as exc:  # noqa: BLE001 - recorded by the issuer; reported here, retried later
                await self._report_failure(cert, exc)
                return
        if stored is None:
            return
        event = "issued" if first else "renewed"
        log.info("certificate %s %s for %s, valid until %s", stored.id, event, ", ".join(stored.names),
                 time.strftime("%Y-%m-%d %H:%M", time.gmtime(stored.not_after)))
        self.notifier.notify(event, stored.id, stored.names, f"{event} by {stored.issuer}", stored.not_after, self.clock())

    def _still_due(self, cert, now: float) -> bool:
        return is_due(cert.source, cert.issued, cert.renew_at, cert.force_renew, cert.next_attempt, now)

    def _retry_at(self, cert, exc: Exception) -> float:
        """When a failed certificate is tried again: when the CA's limit allows, or after
        the backoff (``owncdn.core.certs.renewal`` Rule 3)."""
        if isinstance(exc, QuotaExceeded):
            return exc.retry_at
        return self.clock() + backoff_seconds(cert.failures + 1, self.backoff_base)

    async def _report_failure(self, cert, exc: Exception) -> None:
        now = self.clock()
        after = await asyncio.to_thread(self.store.get_cert, cert.id)
        error = after.last_error if after is not None and after.last_error else str(exc)
        wait = (after.next_attempt - now) if after is not None else 0.0
        log.warning("certificate %s (%s) failed: %s; next attempt in %.0f s", cert.id, ", ".join(cert.names),
                    error, wait)
        self.notifier.notify("failed", cert.id, cert.names, error, cert.not_after, now)


@dataclass(frozen=True)
class ManagerSettings:
    """How ``owncdn control`` runs the manager (its command-line flags)."""

    enabled: bool = True
    webhooks: tuple = ()  # Webhook values
    ca_bundle: str | None = None
    interval: float = 1.0
    backoff_base: float = 60.0
    propagation_timeout: float = 30.0


def start_manager(store, hub, app, settings: ManagerSettings | None = None) -> asyncio.Task | None:
    """The manager as a task of the running loop; its challenges and certificates wake
    every event stream, and ``POST /v1/certs/{id}/renew`` on ``app`` wakes it."""
    settings = settings or ManagerSettings()
    if not settings.enabled:
        return None
    options = IssueOptions(ca_bundle=settings.ca_bundle, propagation_timeout=settings.propagation_timeout)
    manager = AcmeManager(store, hub.notify_all, notifier=Notifier(list(settings.webhooks)), options=options,
                          sealer=app.state.acme_sealer, interval=settings.interval,
                          backoff_base=settings.backoff_base)
    app.state.acme_manager = manager
    return asyncio.get_running_loop().create_task(manager.run(), name="acme-manager")
