"""Alerts to webhooks: edges and origins down and back, error rate, certificate trouble,
pushed releases an edge failed or is retrying.

``owncdn control --alert-webhook URL`` (repeatable; ``slack:URL`` for a Slack,
Mattermost or Rocket.Chat incoming webhook) and ``--alert-error-rate 0.05``. When to
alert is decided in ``owncdn.core.alerts``; this module sends.

Rules:
1. Delivery is the certificate manager's webhook sender (``owncdn.control.acme.notify``):
   a POST per hook, retried after 0.5, 1, 2, 4 s on connection errors, 5xx and 429,
   in the background, the URL's path never logged.
2. ``format: json`` posts ``{"source": "owncdn", "alert", "severity", "env", "subject",
   "message", "time"}``; ``format: slack`` posts ``{"text": ...}``.
3. The last ``HISTORY`` alerts are kept in memory (``recent``) for the API
   (``GET /v1/alerts``) and tests; without webhooks alerts are only logged and kept.
4. Certificate trouble: the certificate manager (or anything holding the app) calls
   ``certificate_trouble(app, cert_id, names, message)``; the alert goes to these
   webhooks (the manager's own notifications go to its ``--acme-webhook`` ones).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from datetime import UTC, datetime

from owncdn.control.acme.notify import Notifier, Webhook
from owncdn.core.alerts import Alert

__all__ = ["Alerts", "Webhook", "alerts_of", "certificate_trouble", "payload"]

log = logging.getLogger("owncdn.control.alerts")
HISTORY = 200
ICONS = {"critical": ":red_circle:", "resolved": ":large_green_circle:", "warning": ":warning:"}


def payload(hook: Webhook, alert: Alert, now: float) -> dict:
    """Rule 2."""
    if hook.format == "slack":
        return {"text": f"{ICONS[alert.severity]} owncdn: {alert.message}"}
    return {"source": "owncdn", "alert": alert.kind, "severity": alert.severity, "env": alert.env,
            "subject": alert.subject, "message": alert.message,
            "time": datetime.fromtimestamp(now, UTC).isoformat()}


class _Sender(Notifier):
    """The certificate notifier's delivery and retries (Rule 1), for any body."""

    def send(self, build) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for hook in self.hooks:
            task = loop.create_task(self._deliver(hook, build(hook)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


class Alerts:
    def __init__(self, hooks: list[Webhook] | tuple = (), error_rate: float = 0.05,
                 error_window: float = 60.0, error_min_requests: int = 20) -> None:
        self.sender = _Sender(list(hooks))
        self.error_rate = error_rate
        self.error_window = error_window
        self.error_min_requests = error_min_requests
        self.recent: deque[tuple[float, Alert]] = deque(maxlen=HISTORY)
        self.counts: Counter[str] = Counter()  # by kind, since start (metrics)

    def __repr__(self) -> str:
        return f"<Alerts hooks={len(self.sender.hooks)} raised={len(self.recent)} {self.sender!r}>"

    def raise_alert(self, alert: Alert, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.recent.append((now, alert))
        self.counts[alert.kind] += 1
        log.warning("alert %s: %s", alert.kind, alert.message)
        if self.sender.hooks:
            self.sender.send(lambda hook: payload(hook, alert, now))

    async def drain(self) -> None:
        await self.sender.drain()


def alerts_of(app) -> Alerts | None:
    """The app's alerts (set by ``control/server.py``), or None."""
    return getattr(app.state, "alerts", None)


def certificate_trouble(app, cert_id: str, names, message: str) -> None:
    """Rule 4: call on the app's event loop."""
    alerts = alerts_of(app)
    if alerts is not None:
        alerts.raise_alert(Alert("certificate", "-", cert_id, f"certificate {cert_id} ({', '.join(names)}): {message}"))
