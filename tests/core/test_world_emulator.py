"""The WAN emulator's own error as numbers: lateness histograms and probe residuals."""

import pytest

from owncdn.core.world.emulator import per_hop, probe_text, summary, text


def test_summary_reads_percentiles_from_microsecond_buckets():
    counts = [0] * 11
    counts[0], counts[3], counts[10] = 90, 9, 1   # the last bucket: later than 10 us
    s = summary(counts)
    assert s == {"packets": 100, "over": 1, "p50_us": 0, "p90_us": 3, "p99_us": 10, "p999_us": 10, "max_us": 10}
    assert "100 packets" in text(s) and "1 later than 10 us" in text(s)


def test_summary_of_nothing():
    assert summary(None)["packets"] == 0 and summary([0, 0])["p50_us"] is None
    assert text(summary([])) == "no packets forwarded"


def test_per_hop_takes_out_the_model_and_the_hosts_own_cost():
    # medians: 2.3 ms across, 2 ms modelled, 0.1 ms on one host's loopback -> 0.1 ms per crossing
    assert per_hop([0.0023, 0.0022, 0.0030], 0.002, [0.0001, 0.0001, 0.0005]) == pytest.approx(0.0001)


def test_probe_text_has_one_line_per_exchange():
    probe = {"city": "Frankfurt", "server": "Frankfurt", "rtt": 0.002, "samples": 10, "exchanges": {
        "pingpong": {"round_trips": 1, "median": 0.00212, "direct": 0.00004, "per_crossing": 0.00004},
        "request": {"round_trips": 2, "median": 0.00435, "direct": 0.00017, "per_crossing": 0.000045}}}
    lines = probe_text(probe).splitlines()
    assert len(lines) == 3
    assert lines[2] == ("request: 4.350 ms = modelled 4 ms + the hosts' own 0.170 ms (same exchange on one "
                        "host's loopback) + 4 crossings x 45 us")
