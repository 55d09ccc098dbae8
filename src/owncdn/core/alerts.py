"""Alerts: what is worth telling an operator, decided without I/O.

The control plane (``owncdn.control.alerts``) sends these to webhooks; this module
decides when. Time comes in as an argument.

Rules:
1. One alert per transition: an edge or an origin going down raises one ``down``
   alert when its hysteresis flips, and one ``up`` alert when it flips back. Checks
   in between raise nothing, however many fail.
2. The error rate of an environment is the share of 5xx among the responses its
   edges served in the last ``window`` seconds, from the edges' own counters (the
   ``responses`` of their health answers). A counter that went down (an edge
   restarted) counts from zero.
3. The error rate is ``high`` once it reaches ``threshold`` over at least
   ``min_requests`` responses, and ``normal`` again only below half the threshold
   (or with too few responses to tell), so a rate that wobbles around the threshold
   alerts once, not on every round.
4. Certificate trouble (a failed issuance or renewal, a certificate close to expiry)
   is one alert per event the certificate manager reports.
5. A pushed release an edge could not switch to (``release_failed``) or is retrying
   to fetch (``release_retrying``, a warning: a full disk, the control plane
   unreachable) is one alert per such report, with the edge's reason. An edge reports
   ``retrying`` only when its trouble changes, so a disk that stays full alerts once.
6. An edge's disk (its state directory: pushed releases, logs, certificates), and the
   disk of the control plane's blob store, is ``low`` once less than ``LOW_DISK_SHARE``
   of it is free, and ``normal`` again only with twice that free, so one alert each way
   (``edge_disk_low`` / ``control_disk_low``, warnings before the pushes stop fitting;
   ``edge_disk_normal`` / ``control_disk_normal``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["LOW_DISK_SHARE", "Alert", "DiskWatch", "ErrorRateWatch", "counter_delta", "health_alert", "release_alert"]

LOW_DISK_SHARE = 0.05  # Rule 6


@dataclass(frozen=True)
class Alert:
    kind: str
    """edge_down, edge_up, origin_down, origin_up, error_rate_high, error_rate_normal,
    certificate, release_failed, release_retrying, edge_disk_low, edge_disk_normal,
    control_disk_low, control_disk_normal."""
    env: str
    subject: str
    """The edge's name, the origin's service and URL, the environment, the certificate."""
    message: str

    @property
    def severity(self) -> str:
        if self.kind.endswith(("_up", "_normal")):
            return "resolved"
        return ("warning" if self.kind in ("certificate", "release_retrying", "edge_disk_low", "control_disk_low")
                else "critical")


def health_alert(what: str, env: str, subject: str, healthy: bool, why: str = "") -> Alert:
    """Rule 1: the alert of one flip of an edge's or an origin's health."""
    if healthy:
        return Alert(f"{what}_up", env, subject, f"{what} {subject} ({env}) is back up")
    return Alert(f"{what}_down", env, subject, f"{what} {subject} ({env}) is DOWN: {why or 'checks failed'}")


def release_alert(env: str, service: str, number: int, edge: str, status: str, reason: str) -> Alert | None:
    """Rule 5: the alert of an edge's report on a release; None for ``serving``."""
    why = reason or "no reason given"
    if status == "failed":
        return Alert("release_failed", env, edge, f"edge {edge} ({env}) could not switch to release {number} of "
                     f"{service}: {why}; it serves the release before")
    if status == "retrying":
        return Alert("release_retrying", env, edge, f"edge {edge} ({env}) does not serve release {number} of "
                     f"{service} yet: {why}; it keeps trying")
    return None


@dataclass
class DiskWatch:
    """Rule 6, for one edge, or for the control plane's blob store (``edge`` None)."""

    env: str
    edge: str | None
    low: bool = False

    def observe(self, free: int, total: int, path: str) -> Alert | None:
        """The alert of this report of the disk (``free`` of ``total`` bytes at
        ``path``), when its state changes."""
        if total <= 0 or free < 0:
            return None
        share = free / total
        if self.edge is None:
            kind, subject, where = "control_disk", "control plane", f"the control plane: the disk of its blobs at {path}"
            stops = "pushes stop fitting"
        else:
            kind, subject, where = "edge_disk", self.edge, f"edge {self.edge} ({self.env}): its disk at {path}"
            stops = "pushed releases stop fitting"
        if not self.low and share < LOW_DISK_SHARE:
            self.low = True
            return Alert(f"{kind}_low", self.env, subject, f"{where} has {share:.1%} free ({_size(free)} of "
                         f"{_size(total)}); {stops} once it is full")
        if self.low and share >= 2 * LOW_DISK_SHARE:
            self.low = False
            return Alert(f"{kind}_normal", self.env, subject, f"{where} has {share:.0%} free again")
        return None


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def counter_delta(before: int | None, after: int) -> int:
    """Growth of a cumulative counter between two readings (Rule 2)."""
    if before is None:
        return 0
    return after - before if after >= before else after


class ErrorRateWatch:
    """Rules 2-3 for one environment: ``observe(now, responses, errors)`` once a round."""

    def __init__(self, env: str, threshold: float = 0.05, window: float = 60.0, min_requests: int = 20) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"the error-rate threshold is a share in (0, 1], not {threshold}")
        self.env = env
        self.threshold = threshold
        self.window = window
        self.min_requests = min_requests
        self.samples: deque[tuple[float, int, int]] = deque()
        self.high = False

    def __repr__(self) -> str:
        return f"<ErrorRateWatch {self.env} {'HIGH' if self.high else 'normal'} rate={self.rate():.1%}>"

    def totals(self) -> tuple[int, int]:
        return sum(s[1] for s in self.samples), sum(s[2] for s in self.samples)

    def rate(self) -> float:
        responses, errors = self.totals()
        return errors / responses if responses else 0.0

    def observe(self, now: float, responses: int, errors: int) -> Alert | None:
        self.samples.append((now, max(0, responses), max(0, errors)))
        while self.samples and self.samples[0][0] <= now - self.window:
            self.samples.popleft()
        total, _ = self.totals()
        rate = self.rate()
        if not self.high and total >= self.min_requests and rate >= self.threshold:
            self.high = True
            return Alert("error_rate_high", self.env, self.env,
                         f"error rate in {self.env} is {rate:.1%} (5xx over the last {self.window:g}s, "
                         f"{total} responses; threshold {self.threshold:.1%})")
        if self.high and (total < self.min_requests or rate < self.threshold / 2):
            self.high = False
            return Alert("error_rate_normal", self.env, self.env,
                         f"error rate in {self.env} is back to {rate:.1%} ({total} responses)")
        return None
