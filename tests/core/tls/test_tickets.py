"""Session-ticket key schedule (core/tls/tickets.py): epochs, the one-way ratchet, OpenSSL's 80 bytes."""

import pytest

from owncdn.core.tls import tickets

KEY = bytes(range(32))


@pytest.mark.parametrize("now, period, expected_epoch, expected_change", [
    (0.0, 3600.0, 0, 3600.0),
    (3599.9, 3600.0, 0, 3600.0),
    (3600.0, 3600.0, 1, 7200.0),        # a boundary belongs to the new epoch
    (1_700_000_000.0, 21600.0, 78703, 1_700_006_400.0),
])
def test_epochs_and_boundaries(now, period, expected_epoch, expected_change):
    assert tickets.epoch(now, period) == expected_epoch
    assert tickets.next_change(now, period) == expected_change


def test_the_ratchet_moves_forward_in_steps_and_agrees_with_itself():
    two = tickets.ratchet(KEY, 5, 7)
    assert two == tickets.ratchet(tickets.ratchet(KEY, 5, 6), 6, 7)   # any worker, any path: the same key
    assert tickets.ratchet(KEY, 5, 5) == KEY
    assert len({KEY, tickets.ratchet(KEY, 5, 6), two}) == 3


@pytest.mark.parametrize("key, start, target", [
    (KEY, 7, 6),          # never backwards
    (KEY[:31], 0, 1),     # 32 bytes only
])
def test_the_ratchet_refuses(key, start, target):
    with pytest.raises(ValueError):
        tickets.ratchet(key, start, target)


def test_the_openssl_key_is_name_hmac_and_aes_from_the_epoch_key():
    raw = tickets.openssl_key(KEY)
    assert len(raw) == tickets.OPENSSL_KEY_BYTES == 80
    name, mac, aes = raw[:16], raw[16:48], raw[48:]
    assert len({name, mac[:16], aes[:16]}) == 3 and KEY not in raw
    assert tickets.openssl_key(tickets.ratchet(KEY, 0, 1))[:16] != name   # a new epoch: a new key name


def test_the_state_on_disk_round_trips_and_rejects_anything_else():
    assert tickets.load(tickets.dump(123, KEY)) == (123, KEY)
    with pytest.raises(ValueError):
        tickets.load(b"not a key file")
