"""owncdn/waiting.py: an event waited for with a time limit, and a cancellation that
comes in the same turn of the loop as the event (lost by Python 3.11's wait_for)."""

from __future__ import annotations

import asyncio

import pytest

from owncdn.waiting import wait_event


async def _set_after(event: asyncio.Event, seconds: float) -> None:
    await asyncio.sleep(seconds)
    event.set()


# (set before the wait, set after these seconds, timeout, what the wait returns)
ROWS = [
    ("already set", True, None, 1.0, True),
    ("set within the limit", False, 0.01, 5.0, True),
    ("never set", False, None, 0.02, False),
    ("no limit, set later", False, 0.02, None, True),
    ("a limit of 0, set before", True, None, 0.0, True),
    ("a limit of 0, not set", False, None, 0.0, False),
]


@pytest.mark.parametrize("what, before, after, timeout, expected", ROWS, ids=[r[0] for r in ROWS])
async def test_rule_2_the_wait_says_whether_the_event_was_set(what, before, after, timeout, expected):
    event = asyncio.Event()
    if before:
        event.set()
    setter = asyncio.create_task(_set_after(event, after)) if after is not None else None
    assert await wait_event(event, timeout) is expected
    if setter is not None:
        setter.cancel()


async def _waits_in_a_loop(event: asyncio.Event, rounds: list) -> None:
    """A background loop stopped by cancelling it, as the log shipper is."""
    while True:
        await wait_event(event, 30.0)
        event.clear()
        rounds.append(1)


@pytest.mark.parametrize("set_first", [True, False], ids=["set in the same turn", "waiting"])
async def test_rule_1_a_cancel_ends_the_loop_even_as_the_event_is_set(set_first):
    event, rounds = asyncio.Event(), []
    task = asyncio.create_task(_waits_in_a_loop(event, rounds))
    await asyncio.sleep(0.01)
    if set_first:
        event.set()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled() and rounds == []
