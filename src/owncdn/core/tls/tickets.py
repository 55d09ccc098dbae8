"""TLS session-ticket keys shared by an edge's worker processes, as pure functions.

A returning visitor resumes its TLS 1.3 session with a ticket the edge issued
earlier (RFC 8446 §4.6.1, §2.2): no certificate is sent or verified. A ticket is
encrypted with the server's ticket key, and OpenSSL makes a random key per
context per process, so with `--workers N` a ticket only resumes on the worker
that issued it (about 1 in N). These rules give every worker the same key without
talking to each other.

Rules:
1. Time is cut into epochs of `period` seconds (`epoch(now, period)`, Unix time);
   every process computes the same epoch from the same clock and changes key at
   the same boundary (`next_change`).
2. The key of epoch e+1 is a one-way function of the key of epoch e (`ratchet`:
   SHA-256 over a label and the key). Whoever holds the key of an epoch computes
   every later one, never an earlier one: forgetting old keys (the file on disk is
   moved forward, `edge/tls.py`) keeps old tickets undecryptable.
3. OpenSSL's ticket key is 80 bytes: a 16-byte name (sent in every ticket, so a
   server knows which key made it), a 32-byte HMAC-SHA256 key and a 32-byte
   AES-256 key (`openssl_key`), each an HMAC-SHA256 of the epoch key with its own
   label, so none of them tells anything about the others.
4. A ticket issued in one epoch stops resuming at the next boundary (the visitor
   then makes a full handshake); OpenSSL holds one key at a time through the
   interface used here.
5. The state kept on disk is `epoch` and `key` (`dump` / `load`): 8 + 32 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

__all__ = ["DEFAULT_PERIOD", "KEY_BYTES", "OPENSSL_KEY_BYTES", "dump", "epoch", "load", "next_change",
           "openssl_key", "ratchet"]

DEFAULT_PERIOD = 6 * 3600.0
KEY_BYTES = 32
OPENSSL_KEY_BYTES = 80  # name 16 + HMAC key 32 + AES key 32 (Rule 3)
_RATCHET = b"owncdn tls ticket ratchet v1"
_STATE = struct.Struct("!q32s")


def epoch(now: float, period: float = DEFAULT_PERIOD) -> int:
    """The epoch `now` falls in (Rule 1)."""
    return int(now // period)


def next_change(now: float, period: float = DEFAULT_PERIOD) -> float:
    """The Unix time the next epoch starts (Rule 1)."""
    return (epoch(now, period) + 1) * period


def ratchet(key: bytes, start: int, target: int) -> bytes:
    """The key of epoch `target` from the key of epoch `start` (Rule 2); `target`
    before `start` is impossible by design and raises ValueError."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a ticket key is {KEY_BYTES} bytes")
    if target < start:
        raise ValueError("ticket keys only move forward")
    for _ in range(target - start):
        key = hashlib.sha256(_RATCHET + key).digest()
    return key


def openssl_key(key: bytes) -> bytes:
    """The 80 bytes `SSL_CTX_set_tlsext_ticket_keys` takes for epoch key `key` (Rule 3)."""
    part = lambda label: hmac.new(key, b"owncdn tls ticket " + label, hashlib.sha256).digest()  # noqa: E731
    return part(b"name")[:16] + part(b"hmac") + part(b"aes")


def dump(at: int, key: bytes) -> bytes:
    """The on-disk form of (epoch, key) (Rule 5)."""
    return _STATE.pack(at, key)


def load(data: bytes) -> tuple[int, bytes]:
    """(epoch, key) from `dump`'s bytes; ValueError when they are not that."""
    if len(data) != _STATE.size:
        raise ValueError("not an owncdn ticket key file")
    at, key = _STATE.unpack(data)
    return at, key
