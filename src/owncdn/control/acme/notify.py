"""Webhooks about certificates: issued, renewed, failed, expiring.

Rules:
1. Every event goes to every configured URL as a POST: ``format: json`` sends
   ``{"event", "certificate", "names", "message", "not_after", "time"}``;
   ``format: slack`` sends ``{"text": ...}`` (Slack, Mattermost and Rocket.Chat
   incoming webhooks read it).
2. A failed delivery (a connection error, a 5xx or 429) is retried after 0.5, 1, 2,
   4 s (``ATTEMPTS`` in all); a 4xx other than 429 is not retried.
3. Deliveries run in the background and never hold up issuance; their outcome is
   logged without the URL's path (Slack's webhook URL path is its secret).
4. Messages never contain key material: only ids, names, dates and the CA's error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import httpx

from owncdn.tlstrust import verified

__all__ = ["Notifier", "Webhook", "EVENTS"]

log = logging.getLogger("owncdn.control.acme")
EVENTS = ("issued", "renewed", "failed", "expiring")
ATTEMPTS = 5
FIRST_DELAY = 0.5


@dataclass(frozen=True)
class Webhook:
    url: str
    format: str = "json"  # "json" | "slack"

    def __repr__(self) -> str:  # the path of a Slack webhook URL is its secret
        parts = urlsplit(self.url)
        return f"<Webhook {parts.scheme}://{parts.netloc}/... {self.format}>"

    @classmethod
    def parse(cls, text: str) -> "Webhook":
        """``URL`` or ``slack:URL`` / ``json:URL`` (the command-line form)."""
        kind, sep, rest = text.partition(":")
        if sep and kind in ("slack", "json") and rest.startswith(("http://", "https://")):
            return cls(rest, kind)
        if not text.startswith(("http://", "https://")):
            raise ValueError(f"a webhook is an http(s) URL, optionally prefixed with slack: or json:, got {text[:40]!r}")
        return cls(text, "json")


def payload(hook: Webhook, event: str, cert_id: str, names: list[str], message: str,
            not_after: float | None, now: float) -> dict:
    when = None if not_after is None else datetime.fromtimestamp(not_after, timezone.utc).isoformat()
    if hook.format == "slack":
        icon = {"failed": ":x:", "expiring": ":warning:"}.get(event, ":lock:")
        text = f"{icon} certificate {cert_id} ({', '.join(names)}) {event}: {message}"
        if when:
            text += f" (valid until {when})"
        return {"text": text}
    return {"event": event, "certificate": cert_id, "names": list(names), "message": message,
            "not_after": when, "time": datetime.fromtimestamp(now, timezone.utc).isoformat()}


class Notifier:
    def __init__(self, hooks: list[Webhook], timeout: float = 10.0) -> None:
        self.hooks = list(hooks)
        self.timeout = timeout
        self.tasks: set[asyncio.Task] = set()
        self.delivered = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<Notifier hooks={len(self.hooks)} delivered={self.delivered} failed={self.failed}>"

    def notify(self, event: str, cert_id: str, names, message: str, not_after: float | None, now: float) -> None:
        """Rule 3: schedule a delivery to every hook on the running loop."""
        loop = asyncio.get_running_loop()
        for hook in self.hooks:
            body = payload(hook, event, cert_id, list(names), message, not_after, now)
            task = loop.create_task(self._deliver(hook, body))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _deliver(self, hook: Webhook, body: dict) -> bool:
        delay = FIRST_DELAY
        async with httpx.AsyncClient(timeout=self.timeout, verify=verified()) as http:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    resp = await http.post(hook.url, json=body)
                    if resp.status_code < 300:
                        self.delivered += 1
                        return True
                    if resp.status_code < 500 and resp.status_code != 429:
                        log.warning("webhook %r refused the notification: %s", hook, resp.status_code)
                        break
                    why = f"status {resp.status_code}"
                except httpx.HTTPError as exc:
                    why = type(exc).__name__
                if attempt < ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
            else:
                log.warning("webhook %r: gave up after %d attempts (%s)", hook, ATTEMPTS, why)
        self.failed += 1
        return False

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
