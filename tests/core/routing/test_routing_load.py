"""Load sums: CPU steal from /proc/stat, event-loop lag from a timer's lateness."""

import pytest

from owncdn.core.routing.load import LoadMeter, LoadReport, cpu_times, steal_share

STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1 2\n"


@pytest.mark.parametrize("text, expected", [
    (STAT.format(user=100, system=50, idle=800, steal=50), (50, 1000)),  # guest columns left out
    ("cpu  1 2 3 4\n", (0, 10)),                                      # an old kernel: no steal column
    ("intr 1 2\n", None),
    ("", None),
])
def test_cpu_times(text, expected):
    assert cpu_times(text) == expected


@pytest.mark.parametrize("before, after, share", [
    ((50, 1000), (150, 2000), 0.1),
    ((50, 1000), (50, 1000), 0.0),     # no growth
    (None, (150, 2000), 0.0),          # one reading only
    ((150, 2000), (100, 2500), 0.0),   # a counter going back counts as none
])
def test_steal_share(before, after, share):
    assert steal_share(before, after) == pytest.approx(share)


def test_meter_keeps_the_worst_recent_lag_and_the_steal_between_reads():
    meter = LoadMeter(window=3)
    meter.tick(1.0, 1.0, STAT.format(user=100, system=50, idle=800, steal=50), (0.5, 0.4, 0.3))
    meter.tick(1.5, 1.8, STAT.format(user=150, system=50, idle=1050, steal=150))
    assert meter.report() == LoadReport(pytest.approx(0.3), pytest.approx(0.25), 0.5, 0.4, 0.3)
    for t in (2.0, 2.5, 3.0):
        meter.tick(t, t - 0.01)  # early ticks (a clock going back) count as no lag
    assert meter.report().loop_lag == 0.0
    assert "lag=0.0ms" in repr(meter)


def test_report_round_trip_and_garbage():
    report = LoadReport(0.01, 0.2, 1.0, 2.0, 3.0)
    assert LoadReport.from_dict(report.as_dict()) == report
    assert LoadReport.from_dict({"loop_lag_seconds": "x", "cpu_steal_ratio": 7, "load1": True}) == \
        LoadReport(0.0, 1.0, 0.0, 0.0, 0.0)
