"""Client methods for health, alerts, explain and probe (mixed into ``owncdn.client.Client``)."""

from __future__ import annotations

from typing import Any


class WatchApi:
    """``origin_health``, ``alerts``, ``cache_state`` and ``probe``; see docs/architecture.md."""

    def origin_health(self, env: str | None = None) -> list[dict[str, Any]]:
        """Every origin of every service (of ``env``) as the monitor judges it."""
        return self._call("GET", "/v1/health/origins", params={"env": env})

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts this control-plane process raised, newest last."""
        return self._call("GET", "/v1/alerts")

    def cache_state(self, env: str, url: str) -> list[dict[str, Any]]:
        """Each edge's cache state for ``url``: ``[{edge, location, variants, error}]``."""
        return self._call("GET", "/v1/cache", params={"env": env, "url": url}, timeout=max(self.timeout, 15))

    def probe(self, env: str, url: str, timeout: float = 10.0, host: str | None = None) -> list[dict[str, Any]]:
        """``url`` fetched from every edge: ``[{edge, location, status, ttfb_ms, total_ms, ...}]``."""
        return self._call("POST", "/v1/probe", json={"env": env, "url": url, "timeout": timeout, "host": host},
                          timeout=max(self.timeout, timeout + 10))
