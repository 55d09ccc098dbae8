"""How loaded a process and its machine are: event-loop lag, CPU steal, load average.

Edges report this in their health answer and metrics; the control plane's monitor
measures its own to know when it is the one starved (``health`` Rules 5-7). The
I/O (a timer, reading ``/proc/stat``) is the caller's; this only does the sums.

Rules:
1. Event-loop lag is how late a periodic timer fires: the time it ran minus the
   time it was due. The reported lag is the largest of the last ``window`` ticks,
   so a short stall stays visible for a few seconds.
2. Steal is the share of CPU time the hypervisor gave to others between two reads
   of ``/proc/stat``'s first ``cpu`` line (the 8th number, after user, nice,
   system, idle, iowait, irq, softirq), over all the numbers' growth (guest time is
   already in user and nice, so the last two columns are left out). With no second
   reading, or no growth, it is 0.
3. A lag or a steal below zero (a clock or counter going back) counts as zero.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["LoadMeter", "LoadReport", "cpu_times", "steal_share"]


def cpu_times(proc_stat: str) -> tuple[int, int] | None:
    """(steal, total) jiffies from ``/proc/stat``'s text; None if it has no cpu line."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            numbers = [int(p) for p in parts[1:9]]
            while len(numbers) < 8:
                numbers.append(0)
            return numbers[7], sum(numbers)
    return None


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float:
    """Steal as a share (0..1) between two readings (Rule 2)."""
    if before is None or after is None:
        return 0.0
    total = after[1] - before[1]
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, (after[0] - before[0]) / total))


@dataclass(frozen=True)
class LoadReport:
    loop_lag: float
    """Seconds (Rule 1)."""
    steal: float
    """0..1 (Rule 2)."""
    load1: float
    load5: float
    load15: float

    def as_dict(self) -> dict:
        return {"loop_lag_seconds": round(self.loop_lag, 4), "cpu_steal_ratio": round(self.steal, 4),
                "load1": self.load1, "load5": self.load5, "load15": self.load15}

    @classmethod
    def from_dict(cls, data: dict) -> "LoadReport":
        def num(key: str) -> float:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0

        return cls(max(0.0, num("loop_lag_seconds")), min(1.0, max(0.0, num("cpu_steal_ratio"))),
                   num("load1"), num("load5"), num("load15"))


class LoadMeter:
    """Fed by a periodic timer: ``tick(due, ran, proc_stat_text, loadavg)``."""

    def __init__(self, window: int = 8) -> None:
        self.lags: deque[float] = deque(maxlen=window)
        self.cpu: tuple[int, int] | None = None
        self.steal = 0.0
        self.loadavg = (0.0, 0.0, 0.0)

    def __repr__(self) -> str:
        r = self.report()
        return f"<LoadMeter lag={r.loop_lag * 1000:.1f}ms steal={r.steal:.1%} load1={r.load1:g}>"

    def tick(self, due: float, ran: float, proc_stat: str | None = None,
             loadavg: tuple[float, float, float] | None = None) -> None:
        self.lags.append(max(0.0, ran - due))  # Rules 1 and 3
        if proc_stat is not None:
            now = cpu_times(proc_stat)
            if now is not None:
                if self.cpu is not None:
                    self.steal = steal_share(self.cpu, now)
                self.cpu = now
        if loadavg is not None:
            self.loadavg = loadavg

    def report(self) -> LoadReport:
        return LoadReport(max(self.lags, default=0.0), self.steal, *self.loadavg)
