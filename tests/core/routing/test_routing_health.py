"""Health hysteresis as rows: (fall, rise, start, check results, states after each), and
the single step the monitor stores (``next_state``)."""

import pytest

from owncdn.core.routing import DEFAULT_FALL, DEFAULT_RISE, CheckState, Hysteresis, next_state

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


# next_state as rows: (fall, rise, state before, result, state after); a state is
# (healthy, consecutive successes, consecutive failures)
STEP_ROWS = [
    (3, 2, (True, 0, 0), True, (True, 1, 0)),
    (3, 2, (True, 5, 0), False, (True, 0, 1)),  # a failure resets the good run
    (3, 2, (True, 0, 2), False, (False, 0, 3)),  # the third failure in a row: down
    (3, 2, (True, 0, 2), True, (True, 1, 0)),  # a success in between: counting starts over
    (3, 2, (False, 0, 7), True, (False, 1, 0)),  # one success is not enough to come back
    (3, 2, (False, 1, 0), True, (True, 2, 0)),  # the second one is
    (3, 2, (False, 1, 0), False, (False, 0, 1)),
    (1, 1, (True, 0, 0), False, (False, 0, 1)),
    (1, 1, (False, 0, 1), True, (True, 1, 0)),
    (3, 2, (False, 0, 9), False, (False, 0, 10)),  # down stays down, counting the failures
]


@pytest.mark.parametrize(("fall", "rise", "before", "ok", "after"), STEP_ROWS)
def test_next_state(fall, rise, before, ok, after):
    assert next_state(CheckState(*before), ok, fall, rise) == CheckState(*after)


def test_a_never_checked_edge_is_healthy_and_defaults_are_three_down_two_up():
    assert CheckState() == CheckState(healthy=True, successes=0, failures=0)
    assert (DEFAULT_FALL, DEFAULT_RISE) == (3, 2)
    with pytest.raises(ValueError):
        next_state(CheckState(), True, fall=0)
