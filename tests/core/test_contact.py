"""Whether a node is in contact (owncdn.core.contact), table-driven, on a made-up clock."""

import pytest

from owncdn.core.contact import AWAY, IN_CONTACT, STREAM_ENDED, contact_state

NOW = 1_000_000.0

# (last contact, stream ended at, expected): window 60 s, grace 5 s
ROWS = [
    (None, None, AWAY),                        # never heard from
    (NOW - 59.9, None, IN_CONTACT),             # Rule 4
    (NOW - 60, None, AWAY),                     # Rule 1: the window is over
    (NOW - 120, NOW - 110, AWAY),               # gone long ago: away, not "ended"
    (NOW - 10, NOW - 8, STREAM_ENDED),          # Rule 2: stopped 8 s ago, not back
    (NOW - 10, NOW - 5, STREAM_ENDED),          # the grace is over
    (NOW - 10, NOW - 4.9, IN_CONTACT),          # still within the grace: it may reconnect
    (NOW - 1, NOW - 1, IN_CONTACT),             # ended just now
    (NOW - 3, NOW - 8, IN_CONTACT),             # Rule 3: heard from after the end (a new stream)
    (NOW - 8, NOW - 8, STREAM_ENDED),           # its last contact was the end itself
    (NOW - 30, None, IN_CONTACT),               # never streamed through a new replica
]


@pytest.mark.parametrize("last, ended, expected", ROWS)
def test_contact_state(last, ended, expected):
    assert contact_state(last, ended, NOW) == expected


def test_window_and_grace_are_arguments():
    assert contact_state(NOW - 20, None, NOW, window=10) == AWAY
    assert contact_state(NOW - 20, NOW - 2, NOW, grace=1) == STREAM_ENDED
    assert contact_state(NOW - 20, NOW - 2, NOW, grace=0) == STREAM_ENDED
    assert contact_state(NOW - 20, NOW - 2, NOW, grace=3) == IN_CONTACT
