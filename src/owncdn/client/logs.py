"""Client methods for logs and analytics (mixed into ``owncdn.client.Client``)."""

from __future__ import annotations

import gzip
from typing import Any


class LogsApi:
    """``stats``, ``top``, ``logs_query``, ``logs_tail`` and ``send_logs``; see docs/logs.md."""

    def stats(self, *, service: str | None = None, location: str | None = None, edge: str | None = None,
              since: str | None = None, start: str | None = None, end: str | None = None,
              bucket: str = "1m") -> dict[str, Any]:
        """``{from, to, bucket, buckets: [...], total}``: requests, bytes, origin bytes,
        hit ratio, status classes and TTFB percentiles per bucket."""
        return self._call("GET", "/v1/stats", params={"service": service, "location": location, "edge": edge,
                                                      "since": since, "from": start, "to": end, "bucket": bucket})

    def top(self, by: str = "url", *, limit: int = 10, service: str | None = None, location: str | None = None,
            since: str | None = None, start: str | None = None, end: str | None = None) -> list[dict[str, Any]]:
        """``[{value, requests, bytes}]``, most requested first."""
        params = {"by": by, "limit": limit, "service": service, "location": location, "since": since,
                  "from": start, "to": end}
        return self._call("GET", "/v1/stats/top", params=params)["top"]

    def logs_query(self, sql: str, limit: int = 1000, timeout: float = 10.0) -> dict[str, Any]:
        """``{columns, rows, truncated}`` of one read-only SELECT over the view ``logs`` (admin)."""
        return self._call("POST", "/v1/logs/query", json={"sql": sql, "limit": limit, "timeout": timeout},
                          timeout=max(self.timeout, timeout + 5))

    def logs_tail(self, after: int = 0, service: str | None = None, wait: float = 0,
                  limit: int = 200) -> dict[str, Any]:
        """``{lines, next}``: lines stored after ``after``; waits up to ``wait`` s for one."""
        return self._call("GET", "/v1/logs/tail", params={"after": after, "service": service, "wait": wait,
                                                          "limit": limit}, timeout=self.timeout + wait)

    def send_logs(self, lines: bytes) -> dict[str, Any]:
        """POST a batch of JSON lines as an edge does (needs a node's token or admin):
        ``{accepted, duplicates, invalid, problems}``."""
        return self._call("POST", "/v1/logs", content=gzip.compress(lines, 1),
                          headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
