"""How fast the control plane's analytics writer may go: ingest yields the CPU to serving.

Storing access-log lines is background work. On a machine shared with edges (`owncdn
up`, or a small fleet's control plane next to an edge) the writer's CPU is taken from
visitors while the machine has none to spare. A thread's nice value does not help there:
each process started in its own session (as `owncdn up` and systemd start them) is its
own scheduling group, and nice only orders threads inside one group. So the writer
paces itself. The I/O (reading ``/proc/stat``, the thread's CPU clock) is the caller's;
this only decides.

Rules:
1. The rest of the machine is what every CPU did (all of ``/proc/stat``'s time but idle
   and iowait) minus the writer thread's own CPU time, between two readings at least
   ``MIN_SPAN`` apart. The machine is busy while the rest used more than ``cpus -
   SPARE`` cores (less than half a core left over).
2. While busy, the writer spends at most ``share`` of one core: a commit that took
   ``cpu`` seconds of the writer's time is followed by the next no sooner than
   ``cpu / share`` after it began (and never sooner than the commit interval). Batches
   wait meanwhile; a full queue answers 429 and the lines wait in the edges' spools.
3. Yielding is for bursts: after ``most`` seconds of busy in a row the writer goes at
   full speed again until it sees the machine not busy, so a long overload does not
   fill the edges' spools (a spool's oldest lines are dropped when it is full).
   ``most`` 0 never yields.
4. No reading yet, or none at all (no ``/proc/stat``): not busy.
"""

from __future__ import annotations

__all__ = ["MIN_SPAN", "SHARE", "SPARE", "YIELD_FOR", "IngestPace", "idle_and_total"]

SHARE = 0.1  # Rule 2: cores the writer uses at most while the machine is busy
SPARE = 0.5  # Rule 1: cores left over below which the machine is busy
YIELD_FOR = 10.0  # Rule 3: seconds of busy in a row the writer yields for at the most
MIN_SPAN = 0.05  # Rule 1: seconds between readings that are compared


def idle_and_total(proc_stat: str) -> tuple[int, int] | None:
    """(idle + iowait, all) jiffies of ``/proc/stat``'s first ``cpu`` line (the first
    eight numbers: guest time is already in user and nice); None if there is none."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            numbers = [int(p) for p in parts[1:9]]
            numbers += [0] * (8 - len(numbers))
            return numbers[3] + numbers[4], sum(numbers)
    return None


class IngestPace:
    """Fed with ``observe`` before each commit; ``gap`` says when the next may start."""

    def __init__(self, cpus: int, hz: float, *, share: float = SHARE, most: float = YIELD_FOR,
                 spare: float = SPARE) -> None:
        self.cpus = max(1, cpus)
        self.hz = hz  # jiffies per second of /proc/stat
        self.share = share
        self.most = most
        self.spare = spare
        self.busy = False
        self.busy_since: float | None = None  # Rule 3: when this busy spell began
        self.rest = 0.0  # cores the rest of the machine used over the last span (Rule 1)
        self._last: tuple[float, int, int, float] | None = None  # (time, idle, total, writer cpu)

    def __repr__(self) -> str:
        return (f"<IngestPace busy={self.busy} rest={self.rest:.2f}/{self.cpus} cores"
                f" yielding={self.yielding(self._last[0] if self._last else 0.0)}>")

    def observe(self, now: float, jiffies: tuple[int, int] | None, writer_cpu: float) -> None:
        """A reading: monotonic seconds, ``idle_and_total`` of /proc/stat (None: no
        reading) and the writer thread's CPU seconds so far (Rule 1)."""
        if jiffies is None:  # Rule 4
            self.busy, self.busy_since, self._last = False, None, None
            return
        if self._last is not None and now - self._last[0] < MIN_SPAN:
            return  # too short to tell: the verdict stands
        if self._last is not None:
            span = now - self._last[0]
            used = ((jiffies[1] - self._last[2]) - (jiffies[0] - self._last[1])) / self.hz
            self.rest = max(0.0, used - (writer_cpu - self._last[3])) / span
            self.busy = self.rest > self.cpus - self.spare
            if not self.busy:
                self.busy_since = None
            elif self.busy_since is None:
                self.busy_since = now  # not the span's start: after a long pause that could be long ago
        self._last = (now, jiffies[0], jiffies[1], writer_cpu)

    def yielding(self, now: float) -> bool:
        """Busy, and not for longer than ``most`` (Rules 2 and 3)."""
        return self.busy and self.most > 0 and self.busy_since is not None and now - self.busy_since <= self.most

    def gap(self, now: float, cpu: float, every: float) -> float:
        """Seconds from the start of a commit that took ``cpu`` seconds of the writer's
        CPU to the start of the next (Rule 2); ``every``: the commit interval."""
        if not self.yielding(now) or self.share <= 0:
            return every
        return max(every, cpu / self.share)
