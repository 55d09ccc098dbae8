"""Health hysteresis as rows: (fall, rise, start, check results, states after each)."""

import pytest

from owncdn.core.routing import Hysteresis

# results and states as strings: "+" ok / "-" failed; "U" up / "D" down after each check
ROWS = [
    (3, 2, "U", "---", "UUD"),
    (3, 2, "U", "--+--+--", "UUUUUUUU"),  # never three failures in a row
    (3, 2, "U", "---+-++", "UUDDDDU"),  # a failure while recovering restarts the rise
    (3, 2, "D", "++", "DU"),
    (3, 2, "D", "+-+-+-", "DDDDDD"),  # flapping probes do not flap the location
    (3, 2, "U", "----++-", "UUDDDUU"),  # one failure after coming back is tolerated
    (1, 1, "U", "-+-+", "DUDU"),  # no hysteresis at all
    (2, 3, "U", "--+++--", "UDDDUUD"),
]


@pytest.mark.parametrize(("fall", "rise", "start", "results", "states"), ROWS)
def test_hysteresis(fall, rise, start, results, states):
    health = Hysteresis(fall=fall, rise=rise, healthy=start == "U")
    seen = "".join("U" if health.observe(r == "+") else "D" for r in results)
    assert seen == states
    assert health.healthy == (states[-1] == "U")


def test_defaults_and_repr():
    health = Hysteresis()
    assert (health.fall, health.rise, health.healthy) == (3, 2, True)
    health.observe(False)
    assert repr(health) == "<Hysteresis up run=1 fall=3 rise=2>"


@pytest.mark.parametrize(("fall", "rise"), [(0, 2), (3, 0)])
def test_fall_and_rise_must_be_positive(fall, rise):
    with pytest.raises(ValueError):
        Hysteresis(fall=fall, rise=rise)
