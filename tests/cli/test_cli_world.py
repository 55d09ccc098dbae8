"""`owncdn world`'s report lines that need no world (the world itself: tests/testing/test_world_small.py)."""

from owncdn.cli.world_cmd import client_tls_text


def test_the_visitors_own_tls_cpu_is_reported_under_an_https_table():
    rows = [{"tls": 0.004, "tls_cpu": 0.0009}, {"tls": 0.0038, "tls_cpu": 0.0011}, {"tls": 0.0041, "tls_cpu": 0.0010}]
    text = client_tls_text(rows)
    assert "median 1.00 ms, 0.90-1.10 ms" in text and "OpenSSL" in text
    assert "Sessions resumed: 0 of 3 page loads shown" in text


def test_a_returning_visitors_table_says_how_many_loads_resumed():
    rows = [{"tls_cpu": 0.0005, "resumed": True}, {"tls_cpu": 0.0006, "resumed": False}]
    assert "Sessions resumed: 1 of 2 page loads shown" in client_tls_text(rows)


def test_no_line_without_tls():
    assert client_tls_text([{"tls": None, "tls_cpu": None}, {"tls": None}]) == ""
