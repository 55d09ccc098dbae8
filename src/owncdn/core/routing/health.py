"""Edge health with hysteresis, so one lost probe does not move traffic.

The control plane's monitor (``owncdn.control.health``) checks every edge and keeps
one ``CheckState`` per edge in the store; ``next_state`` is the whole rule, so
several control-plane replicas reading and writing that row agree on it.

Rules:

1. A healthy edge goes down after ``fall`` consecutive failed checks (default 3).
2. A down edge comes up after ``rise`` consecutive good checks (default 2).
3. A result of the other kind resets the run being counted: ``successes`` and
   ``failures`` are the current runs of good and failed checks; one of them is 0.
4. A new edge (never checked) starts healthy, so an edge that registers is used at
   once and a fleet without a monitor routes as if everything were up.
5-7. A starved checker widens its timeouts and does not count its own timeouts
   against an edge (below, `Starvation`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULT_FALL = 3
DEFAULT_RISE = 2


def _check_thresholds(fall: int, rise: int) -> None:
    if fall < 1 or rise < 1:
        raise ValueError(f"fall and rise must be at least 1, not fall={fall} rise={rise}")


@dataclass(frozen=True)
class CheckState:
    """What the monitor knows about one edge (Rule 3: one run is always 0)."""

    healthy: bool = True
    successes: int = 0
    failures: int = 0


def next_state(state: CheckState, ok: bool, fall: int = DEFAULT_FALL, rise: int = DEFAULT_RISE) -> CheckState:
    """The state after one more check result (Rules 1-3)."""
    _check_thresholds(fall, rise)
    if ok:
        state = replace(state, successes=state.successes + 1, failures=0)
        if not state.healthy and state.successes >= rise:
            state = replace(state, healthy=True)
    else:
        state = replace(state, failures=state.failures + 1, successes=0)
        if state.healthy and state.failures >= fall:
            state = replace(state, healthy=False)
    return state


class Hysteresis:
    """Health of one edge or location, fed one check result at a time (in memory)."""

    __slots__ = ("fall", "rise", "state")

    def __init__(self, fall: int = DEFAULT_FALL, rise: int = DEFAULT_RISE, healthy: bool = True) -> None:
        _check_thresholds(fall, rise)
        self.fall = fall
        self.rise = rise
        self.state = CheckState(healthy=healthy)

    @property
    def healthy(self) -> bool:
        return self.state.healthy

    def observe(self, ok: bool) -> bool:
        """Record one check result; return the (possibly changed) state."""
        self.state = next_state(self.state, ok, self.fall, self.rise)
        return self.state.healthy

    def __repr__(self) -> str:
        s = self.state
        run = s.failures if s.healthy else s.successes  # the run that would change the state
        return f"<Hysteresis {'up' if s.healthy else 'down'} run={run} fall={self.fall} rise={self.rise}>"


# -- a starved checker (Rules 5-7) ---------------------------------------------------------
#
# 5. The checker measures its own starvation before each round: its event loop's lag
#    (how late a short timer fires) and the CPU steal time of its machine. It is
#    starved when the lag reaches STARVED_LAG seconds or steal reaches STARVED_STEAL.
# 6. A check's timeout is widened by what starvation costs: divided by the share of
#    CPU the checker still gets (1 - steal, at least 1/4), plus twice the lag, never
#    beyond MAX_WIDENING times the configured timeout.
# 7. A check that timed out while the checker was starved proves nothing about the
#    edge: it is not counted (neither a failure nor a success). Refused connections
#    and bad answers still count: they are the edge's own doing.

STARVED_LAG = 0.1
STARVED_STEAL = 0.25
MAX_WIDENING = 4.0


@dataclass(frozen=True)
class Starvation:
    """How starved a process is: event-loop lag (seconds) and CPU steal (0..1)."""

    loop_lag: float = 0.0
    steal: float = 0.0

    @property
    def starved(self) -> bool:
        """Rule 5."""
        return self.loop_lag >= STARVED_LAG or self.steal >= STARVED_STEAL


def widened_timeout(timeout: float, checker: Starvation) -> float:
    """The timeout to use for one round of checks (Rule 6)."""
    share = max(0.25, 1.0 - max(0.0, checker.steal))
    widened = timeout / share + 2 * max(0.0, checker.loop_lag)
    return min(widened, timeout * MAX_WIDENING)


def counted(ok: bool, timed_out: bool, checker: Starvation) -> bool:
    """Whether a check result goes into the hysteresis (Rule 7)."""
    return ok or not (timed_out and checker.starved)
