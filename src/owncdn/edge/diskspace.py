"""How full the disk under the edge's state directory is (pushed releases, spooled
logs, certificates live there).

    report = disk_report(edge)   # {"path", "free", "total"} or None

Rules:
1. Read with ``statvfs`` of the state directory at each ask (a system call, about a
   microsecond): ``free`` is what an unprivileged writer may still use
   (``f_bavail``), ``total`` the file system's size.
2. An edge without a state directory (in memory only), or whose directory cannot be
   read, reports None.
3. The health answer carries it (``health.py`` Rule 4), so the control plane's monitor
   warns before pushes stop fitting (``core/alerts.py`` Rule 6); ``/metrics`` has it as
   ``owncdn_edge_disk_free_bytes`` and ``owncdn_edge_disk_size_bytes``.
"""

from __future__ import annotations

import os

__all__ = ["disk_report", "metric_families"]


def disk_report(edge) -> dict | None:
    """Rules 1-2."""
    path = getattr(edge, "state_dir", None)
    if path is None:
        return None
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return {"path": str(path), "free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize}


def metric_families(edge, prefix: str):
    """Rule 3."""
    report = disk_report(edge)
    if report is None:
        return
    from prometheus_client.core import GaugeMetricFamily

    yield GaugeMetricFamily(prefix + "disk_free_bytes", "Bytes free (for this process) on the disk of the edge's "
                            "state directory.", value=report["free"])
    yield GaugeMetricFamily(prefix + "disk_size_bytes", "Size of the disk of the edge's state directory.",
                            value=report["total"])
