"""A starved checker widens its timeouts and does not condemn a healthy edge (health Rules 5-7)."""

import pytest

from owncdn.core.routing.health import MAX_WIDENING, CheckState, Starvation, counted, next_state, widened_timeout


@pytest.mark.parametrize("lag, steal, starved", [
    (0.0, 0.0, False),
    (0.05, 0.1, False),
    (0.1, 0.0, True),     # lag at the limit
    (0.0, 0.25, True),    # steal at the limit
    (2.0, 0.9, True),
])
def test_starved(lag, steal, starved):
    assert Starvation(lag, steal).starved is starved


@pytest.mark.parametrize("timeout, lag, steal, widened", [
    (1.0, 0.0, 0.0, 1.0),        # a healthy checker keeps its timeout
    (1.0, 0.0, 0.5, 2.0),        # half the CPU: twice the time
    (1.0, 0.25, 0.0, 1.5),       # plus twice the lag
    (1.0, 0.25, 0.5, 2.5),
    (1.0, 0.0, 0.9, 4.0),        # the share counts as at least 1/4
    (1.0, 5.0, 0.0, MAX_WIDENING),  # never beyond four times
    (2.0, 0.0, -0.1, 2.0),       # a negative steal (counter wrap) is none
])
def test_widened_timeout(timeout, lag, steal, widened):
    assert widened_timeout(timeout, Starvation(lag, steal)) == pytest.approx(widened)


@pytest.mark.parametrize("ok, timed_out, lag, steal, count", [
    (True, False, 0.0, 0.0, True),
    (True, False, 1.0, 0.5, True),     # a success always counts
    (False, True, 0.0, 0.0, True),     # a timeout of a healthy checker counts
    (False, True, 0.5, 0.0, False),    # a starved checker's timeout does not
    (False, True, 0.0, 0.4, False),
    (False, False, 0.5, 0.4, True),    # a refused connection counts even then
])
def test_counted(ok, timed_out, lag, steal, count):
    assert counted(ok, timed_out, Starvation(lag, steal)) is count


def test_a_starved_checker_never_takes_a_healthy_edge_down():
    state, checker = CheckState(), Starvation(loop_lag=0.5)
    for _ in range(10):  # every check times out while the checker is starved
        if counted(False, True, checker):
            state = next_state(state, False)
    assert state.healthy
