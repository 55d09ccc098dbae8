"""The emulator probe's echo: every exchange timed, on loopback (no emulator needed)."""

from owncdn.testing.wanprobe import EXCHANGES, measure


def test_measure_times_every_exchange_against_the_echo_server():
    out = measure([], [], "127.0.0.1", samples=5)
    assert set(out) == set(EXCHANGES)
    assert all(len(xs) == 5 and all(x > 0 for x in xs) for xs in out.values())
    # a request starts with the handshake, so it can never be shorter than the handshake alone
    assert all(r >= c for r, c in zip(out["request"], out["connect"]))
