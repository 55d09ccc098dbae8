"""The edge's load: event-loop lag, CPU steal and load average, measured twice a second.

Rules:
1. A timer runs every ``INTERVAL`` seconds; how late it fires is the event-loop lag,
   and each tick reads ``/proc/stat`` (steal) and the load average
   (``owncdn.core.routing.load`` does the sums). Where ``/proc/stat`` is missing,
   steal reads 0.
2. The report goes into the health answer (``edge/health.py``), the metrics
   (``owncdn_edge_loop_lag_seconds``, ``owncdn_edge_cpu_steal_ratio``,
   ``owncdn_edge_load1``) and from there into the control plane's monitor.
3. The meter lives on the edge (``edge.load``), its task beside the sweeper's; it
   adds nothing to the request path.
"""

from __future__ import annotations

import asyncio
import os

from owncdn.core.routing.load import LoadMeter, LoadReport

INTERVAL = 0.5


def read_proc_stat() -> str | None:
    try:
        with open("/proc/stat") as f:
            return f.read(4096)
    except OSError:
        return None


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


async def measure(meter: LoadMeter, interval: float = INTERVAL) -> None:
    """Rule 1, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        meter.tick(due, loop.time(), read_proc_stat(), loadavg())


def start_load_meter(edge) -> None:
    """Rule 3: ``edge.load`` and its task."""
    edge.load = LoadMeter()
    edge.load_task = asyncio.get_running_loop().create_task(measure(edge.load), name="edge-load")


def stop_load_meter(edge) -> None:
    task = getattr(edge, "load_task", None)
    if task is not None:
        task.cancel()


def load_report(edge) -> LoadReport:
    meter = getattr(edge, "load", None)
    return meter.report() if meter is not None else LoadReport(0.0, 0.0, *loadavg())
