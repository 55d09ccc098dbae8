"""The edge's Prometheus metrics, served as text on the admin listener (`GET /metrics`).

Rules:
1. Nothing on the request path touches prometheus_client. A finished response adds
   to one plain list, `EdgeMetrics.served[(service, status, cache)] = [responses,
   body bytes]`; a cache hit does that inline in `Edge._hit` (about 0.1 µs).
   Origin fetches and purges are rarer and add to plain dicts and lists here.
2. At scrape time `EdgeCollector` turns those, and what the store and the edge
   already know (keys, bytes, budget, evictions, connections, fills), into metric
   families. Each edge has its own `CollectorRegistry`; there is no global state,
   so several edges in one process keep separate numbers.
3. Labels stay bounded: `service` is a configured service name ("-" for requests
   no service took, such as unknown hosts and bad requests), `status` the
   three-digit code, `cache` the X-Cache value (HIT, MISS, STALE, REVALIDATED,
   PASS, and "-ABORTED" forms when the client left before the end).
4. Origin counts are per attempt: a request retried on a second origin is two
   origin requests. `ok` means a response head arrived, whatever its status.
   Origin bytes are body bytes, like served bytes, so origin offload is
   1 - origin_bytes_total / response_bytes_total.
5. `file_bodies` counts response bodies sent from a file (64 KiB and more) by the
   tier that held them: memory (written from a memory file's mapping) or disk (a
   disk-tier or release file, sent with sendfile on plain HTTP).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from owncdn.edge.diskspace import metric_families as disk_families

if TYPE_CHECKING:
    from owncdn.edge.app import Edge

PREFIX = "owncdn_edge_"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.encode()  # the response field, as bytes
CACHE_STATUSES = ("HIT", "MISS", "STALE", "REVALIDATED", "PASS")
# Upper bounds (seconds) of the origin latency histogram; +Inf is added.
ORIGIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def purge_kind(spec: dict) -> str:
    """all / tag / url / prefix, in the order `purge._select` reads a spec."""
    if spec.get("all"):
        return "all"
    for kind in ("tag", "url", "prefix"):
        if kind in spec:
            return kind
    return "other"


class Latency:
    """A histogram as plain counts: one per bucket (not cumulative) plus +Inf."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(ORIGIN_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(ORIGIN_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        out, n = [], 0
        for bound, count in zip(ORIGIN_BUCKETS + (float("inf"),), self.counts):
            n += count
            out.append((floatToGoString(bound), n))
        return out


class EdgeMetrics:
    """Plain counters for one edge, and the registry that exposes them."""

    def __init__(self, edge: "Edge") -> None:
        self.served: dict[tuple[str, int, str], list[int]] = {}  # -> [responses, body bytes]
        self.origin_requests: dict[tuple[str, str], int] = {}    # (service, outcome) -> n
        self.origin_bytes: dict[str, int] = {}
        self.origin_latency: dict[str, Latency] = {}
        self.purges: dict[tuple[str, bool], list[int]] = {}      # (kind, soft) -> [purges, objects]
        self.file_bodies = [0, 0]  # Rule 5: [from a memory file, from a disk file]
        self.registry = CollectorRegistry()
        self.registry.register(EdgeCollector(edge, self))

    def __repr__(self) -> str:
        return f"<EdgeMetrics responses={sum(c[0] for c in self.served.values())} series={len(self.served)}>"

    # -- recording (the hit path does `series` inline; see Edge._hit) -----------------
    def series(self, service: str, status: int, cache: str) -> list[int]:
        """The [responses, bytes] counter pair of one label set, made on first use."""
        key = (service, status, cache)
        pair = self.served.get(key)
        if pair is None:
            pair = self.served[key] = [0, 0]
        return pair

    def response(self, req) -> None:
        """A response is complete (or the client left): count it and its body bytes."""
        key = (req.service, req.status, req.cache)
        pair = self.served.get(key) or self.series(*key)
        pair[0] += 1
        pair[1] += req.sent

    def origin_response(self, service: str, seconds: float) -> None:
        """An origin's response head arrived `seconds` after the request was sent."""
        key = (service, "ok")
        self.origin_requests[key] = self.origin_requests.get(key, 0) + 1
        latency = self.origin_latency.get(service)
        if latency is None:
            latency = self.origin_latency[service] = Latency()
        latency.observe(seconds)

    def origin_failed(self, service: str, timeout: bool) -> None:
        key = (service, "timeout" if timeout else "error")
        self.origin_requests[key] = self.origin_requests.get(key, 0) + 1

    def origin_body(self, service: str, size: int) -> None:
        self.origin_bytes[service] = self.origin_bytes.get(service, 0) + size

    def purged(self, spec: dict, objects: int) -> None:
        key = (purge_kind(spec), bool(spec.get("soft")))
        pair = self.purges.get(key)
        if pair is None:
            pair = self.purges[key] = [0, 0]
        pair[0] += 1
        pair[1] += objects

    # -- reading ----------------------------------------------------------------------
    def by_cache(self) -> dict[str, int]:
        """Responses by cache status (what /stats shows as "responses")."""
        out = dict.fromkeys(CACHE_STATUSES, 0)
        for (_, _, cache), (n, _) in list(self.served.items()):
            out[cache] = out.get(cache, 0) + n
        return out

    def exposition(self) -> bytes:
        """The text exposition format (version 0.0.4) of this edge's registry."""
        return generate_latest(self.registry)


def store_tiers(edge: "Edge") -> list[tuple[str, object]]:
    """(tier, store) pairs; a store has `entries`, `used`, `budget` and `evictions`."""
    tiers = [("memory", edge.store)]
    if edge.disk is not None:
        tiers.append(("disk", edge.disk))
    return tiers


class EdgeCollector(Collector):
    """Builds the metric families from `EdgeMetrics` and the edge, at scrape time."""

    def __init__(self, edge: "Edge", metrics: EdgeMetrics) -> None:
        self.edge = edge
        self.metrics = metrics

    def collect(self):
        yield from self._responses()
        yield from self._origin()
        yield from self._store()
        yield from self._purges()
        yield from self._edge()
        yield from disk_families(self.edge, PREFIX)  # edge/diskspace.py
        if self.edge.releases is not None:  # pushed releases (edge/releases.py)
            yield from self.edge.releases.metric_families(PREFIX)
            yield from self.edge.variants.metric_families(PREFIX)

    def _responses(self):
        m = self.metrics
        requests = CounterMetricFamily(PREFIX + "requests", "Responses sent to clients.",
                                       labels=["service", "status", "cache"])
        sent = CounterMetricFamily(PREFIX + "response_bytes", "Body bytes sent to clients.",
                                   labels=["service", "cache"])
        by_cache: dict[tuple[str, str], int] = {}
        for (service, status, cache), (n, size) in sorted(list(m.served.items()), key=_label_order):
            requests.add_metric([service, str(status), cache], n)
            by_cache[service, cache] = by_cache.get((service, cache), 0) + size
        for (service, cache), size in by_cache.items():
            sent.add_metric([service, cache], size)
        files = CounterMetricFamily(PREFIX + "file_bodies", "Response bodies sent from a file (64 KiB and "
                                    "more), by the tier that held it: memory (written from its mapping) or "
                                    "disk (sendfile).", labels=["tier"])
        files.add_metric(["memory"], m.file_bodies[0])
        files.add_metric(["disk"], m.file_bodies[1])
        yield requests
        yield sent
        yield files

    def _origin(self):
        m = self.metrics
        requests = CounterMetricFamily(
            PREFIX + "origin_requests", "Requests sent to origins (each retry counts), by outcome: "
            "ok (a response head arrived), error, timeout.", labels=["service", "outcome"])
        for (service, outcome), n in sorted(m.origin_requests.items()):
            requests.add_metric([service, outcome], n)
        body = CounterMetricFamily(PREFIX + "origin_bytes", "Body bytes received from origins.",
                                   labels=["service"])
        for service, size in sorted(m.origin_bytes.items()):
            body.add_metric([service], size)
        latency = HistogramMetricFamily(PREFIX + "origin_latency_seconds",
                                        "Time from sending a request to an origin to its response head.",
                                        labels=["service"])
        for service, hist in sorted(m.origin_latency.items()):
            latency.add_metric([service], hist.cumulative(), hist.total)
        yield requests
        yield body
        yield latency

    def _store(self):
        keys = GaugeMetricFamily(PREFIX + "store_keys", "Stored cache keys (all Vary variants of a key count once).",
                                 labels=["tier"])
        used = GaugeMetricFamily(PREFIX + "store_bytes", "Bytes the stored objects take (bodies and heads).",
                                 labels=["tier"])
        budget = GaugeMetricFamily(PREFIX + "store_budget_bytes", "The store's byte budget.", labels=["tier"])
        evictions = CounterMetricFamily(PREFIX + "store_evictions", "Keys evicted to stay within the budget.",
                                        labels=["tier"])
        for tier, store in store_tiers(self.edge):
            keys.add_metric([tier], len(store.entries))
            used.add_metric([tier], store.used)
            budget.add_metric([tier], store.budget)
            evictions.add_metric([tier], store.evictions)
        yield from (keys, used, budget, evictions)

    def _purges(self):
        purges = CounterMetricFamily(PREFIX + "purges", "Purges run on this edge.", labels=["kind", "soft"])
        objects = CounterMetricFamily(PREFIX + "purged_objects", "Stored objects purges removed or made stale.",
                                      labels=["kind", "soft"])
        for (kind, soft), (n, count) in sorted(self.metrics.purges.items()):
            labels = [kind, "true" if soft else "false"]
            purges.add_metric(labels, n)
            objects.add_metric(labels, count)
        yield purges
        yield objects

    def _edge(self):
        edge = self.edge
        info = GaugeMetricFamily(PREFIX + "info", "This edge's id and location.", labels=["edge", "location"])
        info.add_metric([edge.edge_id, edge.location], 1)
        yield info
        yield GaugeMetricFamily(PREFIX + "connections", "Open client connections.", value=len(edge.connections))
        yield GaugeMetricFamily(PREFIX + "fills_in_flight", "Shared origin fetches (cache fills) running.",
                                value=len(edge.fills))
        yield from _load(edge)


def _load(edge):
    """The edge's load (edge/load.py): event-loop lag, CPU steal, load average."""
    from owncdn.edge.load import load_report

    report = load_report(edge)
    yield GaugeMetricFamily(PREFIX + "loop_lag_seconds", "Largest event-loop lag of the last few seconds.",
                            value=report.loop_lag)
    yield GaugeMetricFamily(PREFIX + "cpu_steal_ratio", "Share of CPU time stolen by the hypervisor (0..1).",
                            value=report.steal)
    yield GaugeMetricFamily(PREFIX + "load1", "The machine's load average over 1 minute.", value=report.load1)


def _label_order(item) -> tuple:
    (service, status, cache), _ = item
    return service, status, cache
