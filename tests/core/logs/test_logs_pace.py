"""The analytics writer's pace: rows of readings (time, jiffies, the writer's CPU) and
what the pace says after them, on a 2-CPU machine at 100 jiffies a second."""

import pytest

from owncdn.core.logs.pace import IngestPace, idle_and_total

PROC_STAT = """cpu  100 5 50 1000 20 3 2 7 4 0
cpu0 50 2 25 500 10 1 1 3 2 0
cpu1 50 3 25 500 10 2 1 4 2 0
intr 12345
"""


def test_idle_and_total_read_the_first_cpu_line():
    # idle + iowait; the sum of the first eight numbers (guest time is in user and nice already)
    assert idle_and_total(PROC_STAT) == (1020, 1187)
    assert idle_and_total("cpu  1 2 3 4\n") == (4, 10)
    assert idle_and_total("intr 1\n") is None


def readings(pace: IngestPace, rows) -> IngestPace:
    """rows: (seconds, cores the rest used since the last row, writer cores since the last row)."""
    idle, total, cpu, last = 0, 0, 0.0, 0.0
    for at, rest, writer in rows:
        span = at - last
        used = (rest + writer) * span
        total += round(2 * span * 100)
        idle += round((2 * span - used) * 100)
        cpu += writer * span
        pace.observe(at, (idle, total), cpu)
        last = at
    return pace


@pytest.mark.parametrize("rows,busy,gap", [
    # one reading: nothing to compare yet (Rule 4)
    ([(0.1, 2.0, 0.0)], False, 0.1),
    # the rest used 1.7 cores of 2 while the writer took 0.3: less than half a core left (Rule 1)
    ([(0.1, 0.0, 0.0), (0.3, 1.7, 0.3)], True, 0.5),
    # the writer alone used 0.9 cores: its own CPU does not make the machine busy
    ([(0.1, 0.0, 0.0), (0.3, 0.1, 0.9)], False, 0.1),
    # the rest used 1.2 cores: more than half a core to spare
    ([(0.1, 0.0, 0.0), (0.3, 1.2, 0.3)], False, 0.1),
    # busy, then idle again: full speed at once
    ([(0.1, 0.0, 0.0), (0.3, 1.9, 0.1), (0.6, 0.2, 0.3)], False, 0.1),
])
def test_busy_and_the_gap_after_a_commit_of_50ms(rows, busy, gap):
    pace = readings(IngestPace(2, 100), rows)
    assert pace.busy is busy
    # Rule 2: a commit that took 0.05 s of the writer's CPU; a tenth of a core: 0.5 s to the next
    assert pace.gap(rows[-1][0], 0.05, 0.1) == pytest.approx(gap)


def test_a_short_commit_still_waits_the_commit_interval():
    pace = readings(IngestPace(2, 100), [(0.1, 0.0, 0.0), (0.3, 1.9, 0.1)])
    assert pace.gap(0.3, 0.001, 0.1) == 0.1


def test_yielding_ends_after_most_seconds_of_busy_and_comes_back_after_a_quiet_reading():
    pace = IngestPace(2, 100, most=2.0)
    rows = [(0.0, 0.0, 0.0)] + [(0.5 * i, 1.9, 0.1) for i in range(1, 7)]  # busy from 0.0 to 3.0
    readings(pace, rows)
    assert pace.busy and not pace.yielding(3.0)  # Rule 3: busy for 3 s, yielded for 2
    assert pace.gap(3.0, 0.05, 0.1) == 0.1
    pace.observe(3.5, (pace._last[1] + 90, pace._last[2] + 100), pace._last[3])  # 0.9 of 1 s idle: quiet
    assert not pace.busy
    pace.observe(4.0, (pace._last[1] + 1, pace._last[2] + 100), pace._last[3])  # busy again: a new spell
    assert pace.yielding(4.0) and pace.gap(4.0, 0.05, 0.1) == pytest.approx(0.5)


def test_most_zero_never_yields_and_no_proc_stat_is_not_busy():
    pace = readings(IngestPace(2, 100, most=0.0), [(0.1, 0.0, 0.0), (0.3, 1.9, 0.1)])
    assert pace.busy and not pace.yielding(0.3) and pace.gap(0.3, 0.05, 0.1) == 0.1
    pace = readings(IngestPace(2, 100), [(0.1, 0.0, 0.0), (0.3, 1.9, 0.1)])
    pace.observe(0.5, None, 0.0)
    assert not pace.busy and pace.gap(0.5, 0.05, 0.1) == 0.1


def test_readings_closer_than_min_span_keep_the_verdict():
    pace = readings(IngestPace(2, 100), [(0.1, 0.0, 0.0), (0.3, 1.9, 0.1)])
    pace.observe(0.31, (pace._last[1] + 2, pace._last[2] + 2), pace._last[3])  # all idle, but 10 ms
    assert pace.busy
    assert "busy=True" in repr(pace)


def test_a_busy_spell_found_after_a_long_pause_starts_now():
    # the writer had nothing to do for a minute, then sees a busy machine: it yields from now on
    pace = readings(IngestPace(2, 100, most=2.0), [(0.0, 0.0, 0.0), (60.0, 1.9, 0.1)])
    assert pace.busy and pace.yielding(60.0) and pace.yielding(61.5)
