"""Location health with hysteresis, so one lost probe does not move traffic."""

from __future__ import annotations


class Hysteresis:
    """Health of one location, fed one check result at a time.

    Rule 1: a healthy location goes down after ``fall`` consecutive failures.
    Rule 2: a down location comes up after ``rise`` consecutive successes.
    Any result of the other kind resets the run being counted.
    """

    __slots__ = ("fall", "rise", "healthy", "_run")

    def __init__(self, fall: int = 3, rise: int = 2, healthy: bool = True) -> None:
        if fall < 1 or rise < 1:
            raise ValueError(f"fall and rise must be at least 1, not fall={fall} rise={rise}")
        self.fall = fall
        self.rise = rise
        self.healthy = healthy
        self._run = 0  # consecutive results that disagree with the current state

    def observe(self, ok: bool) -> bool:
        """Record one check result; return the (possibly changed) state."""
        if ok == self.healthy:
            self._run = 0
            return self.healthy
        self._run += 1
        if self._run >= (self.rise if ok else self.fall):
            self.healthy = ok
            self._run = 0
        return self.healthy

    def __repr__(self) -> str:
        state = "up" if self.healthy else "down"
        return f"<Hysteresis {state} run={self._run} fall={self.fall} rise={self.rise}>"
