"""The control plane's Prometheus metrics: ``GET /metrics`` (scope read).

Rules:
1. API requests are counted by route template (``/v1/nodes/{node_id}/report``, never
   the raw path, so labels stay bounded), method and status, when the response
   starts; an event stream is counted open from its start until it ends.
2. Everything else is read at scrape time: nodes by environment, kind and status
   from the store; edge and origin health, the edges' reported load and the
   monitor's own from this replica's health monitor; alerts raised here by kind.
3. Each app has its own registry (no global state), like the edges' metrics. The
   endpoint needs a token like every other (Prometheus sends one with
   ``authorization: {credentials_file: ...}`` in its scrape config).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from owncdn.control.api.auth import require
from owncdn.control.store import StoreError, Token

PREFIX = "owncdn_control_"
__all__ = ["ControlMetrics", "install_metrics"]


class ControlMetrics:
    """Plain counters the middleware bumps (Rule 1)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.streams_open = 0


class _Middleware:
    """A plain ASGI wrapper: server-sent event streams pass through untouched."""

    def __init__(self, app, metrics: ControlMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        metrics = self.metrics
        stream = False

        async def counted_send(message):
            nonlocal stream
            if message["type"] == "http.response.start":
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                metrics.requests[(path, scope["method"], str(message["status"]))] += 1
                if path.endswith("/events") and message["status"] == 200:
                    stream = True
                    metrics.streams_open += 1
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            if stream:
                metrics.streams_open -= 1


class _Collector(Collector):
    """Rule 2."""

    def __init__(self, app: FastAPI, metrics: ControlMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        requests = CounterMetricFamily(PREFIX + "http_requests", "API requests by route template, method and status.",
                                       labels=["route", "method", "status"])
        for (route, method, status), n in sorted(m.requests.items()):
            requests.add_metric([route, method, status], n)
        yield requests
        yield GaugeMetricFamily(PREFIX + "event_streams_open", "Nodes' event streams open on this replica.",
                                value=m.streams_open)
        yield from self._nodes()
        yield from self._health()
        yield from self._alerts()

    def _nodes(self):
        nodes = GaugeMetricFamily(PREFIX + "nodes", "Registered nodes by environment, kind and status.",
                                  labels=["env", "kind", "status"])
        try:
            counts = Counter((n.env, n.kind, n.status) for n in self.app.state.owncdn.store.list_nodes())
        except StoreError:
            counts = Counter()
        for labels, n in sorted(counts.items()):
            nodes.add_metric(list(labels), n)
        yield nodes

    def _health(self):
        monitor = getattr(self.app.state, "health_monitor", None)
        edge_up = GaugeMetricFamily(PREFIX + "edge_healthy", "1 when the monitor counts the edge up.",
                                    labels=["env", "edge", "location"])
        lag = GaugeMetricFamily(PREFIX + "edge_loop_lag_seconds", "Event-loop lag an edge reported.",
                                labels=["env", "edge", "location"])
        steal = GaugeMetricFamily(PREFIX + "edge_cpu_steal_ratio", "CPU steal an edge reported (0..1).",
                                  labels=["env", "edge", "location"])
        load1 = GaugeMetricFamily(PREFIX + "edge_load1", "Load average (1 min) an edge reported.",
                                  labels=["env", "edge", "location"])
        origin_up = GaugeMetricFamily(PREFIX + "origin_healthy", "1 when the monitor counts the origin up.",
                                      labels=["env", "service", "origin"])
        origin_ms = GaugeMetricFamily(PREFIX + "origin_check_seconds", "Time the last origin check took.",
                                      labels=["env", "service", "origin"])
        if monitor is not None:
            try:
                edges = self.app.state.owncdn.store.edge_health()
            except StoreError:
                edges = []
            for e in edges:
                labels = [e.env, e.name, e.location]
                edge_up.add_metric(labels, 1 if e.healthy else 0)
                info = monitor.edges.get(e.node_id)
                if info is not None:
                    lag.add_metric(labels, info.load.loop_lag)
                    steal.add_metric(labels, info.load.steal)
                    load1.add_metric(labels, info.load.load1)
            for h in monitor.origins.health():
                labels = [h.target.env, h.target.service, h.target.origin]
                origin_up.add_metric(labels, 1 if h.healthy else 0)
                if h.ms is not None:
                    origin_ms.add_metric(labels, h.ms / 1000)
        yield from (edge_up, lag, steal, load1, origin_up, origin_ms)
        own = monitor.meter.report() if monitor is not None else None
        yield CounterMetricFamily(PREFIX + "health_rounds", "Rounds of health checks run here.",
                                  value=monitor.rounds if monitor else 0)
        yield CounterMetricFamily(PREFIX + "health_checks_uncounted",
                                  "Edge checks not counted because this monitor was starved.",
                                  value=monitor.uncounted if monitor else 0)
        yield GaugeMetricFamily(PREFIX + "monitor_loop_lag_seconds", "The monitor's own event-loop lag.",
                                value=own.loop_lag if own else 0.0)
        yield GaugeMetricFamily(PREFIX + "monitor_check_timeout_seconds",
                                "The timeout of the last round (widened when starved).",
                                value=monitor.last_timeout if monitor else 0.0)

    def _alerts(self):
        alerts = getattr(self.app.state, "alerts", None)
        family = CounterMetricFamily(PREFIX + "alerts", "Alerts raised on this replica by kind.", labels=["kind"])
        counts = alerts.counts if alerts is not None else Counter()
        for kind, n in sorted(counts.items()):
            family.add_metric([kind], n)
        yield family


def install_metrics(app: FastAPI) -> None:
    """The middleware, the registry and ``GET /metrics`` (Rule 3)."""
    metrics = app.state.control_metrics = ControlMetrics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(app, metrics))
    app.add_middleware(_Middleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def scrape(request: Request, _: Annotated[Token, Depends(require("read"))]) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
