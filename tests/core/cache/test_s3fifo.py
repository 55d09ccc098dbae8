"""S3-FIFO's rules as scenarios: operations in, queues and evicted keys out.

Queues are listed tail first (the next key to leave comes first). Rule numbers refer
to the docstring of owncdn/core/cache/s3fifo.py.
"""

import pytest

from owncdn.core.cache import S3FIFO


def run(policy, ops):
    """Apply ops; return every key returned as evicted, in order."""
    evicted = []
    for op, *args in ops:
        if op == "admit":
            evicted += policy.admit(*args)
        elif op == "hit":
            policy.hit(*args)
        elif op == "remove":
            policy.remove(*args)
        elif op == "resize":
            evicted += policy.resize(*args)
    return evicted


def admits(*pairs):
    return [("admit", key, size) for key, size in pairs]


# capacity 20, small_ratio 0.5: S holds 10 bytes, M 10 bytes.
WARM = admits(("a", 5), ("b", 5), ("c", 5), ("d", 5))  # S [a, b], M [c, d] (rule 5)

SCENARIOS = [
    # (name, capacity, small_ratio, ops, small, main, ghost, evicted)
    ("new keys go to S", 100, 0.1, admits(("a", 5)), ["a"], [], [], []),
    ("warm-up: S full, nothing evicted yet -> M", 20, 0.5, WARM,
     ["a", "b"], ["c", "d"], [], []),
    ("one-hit wonder leaves S for G", 20, 0.5, WARM + admits(("e", 5)),
     ["b", "e"], ["c", "d"], ["a"], ["a"]),
    ("one hit in S is not enough (freq > 1 moves)", 20, 0.5,
     WARM + [("hit", "a")] + admits(("e", 5)),
     ["b", "e"], ["c", "d"], ["a"], ["a"]),
    ("two hits in S move the object to M", 20, 0.5,
     WARM + [("hit", "a"), ("hit", "a")] + admits(("e", 5)),
     ["e"], ["c", "d", "a"], ["b"], ["b"]),
    ("ghost hit goes to M", 20, 0.5, WARM + admits(("e", 5), ("a", 5)),
     ["e"], ["c", "d", "a"], ["b"], ["a", "b"]),
    ("M over its share is evicted from first", 20, 0.5,
     WARM + admits(("e", 5), ("a", 5), ("f", 5)),
     ["e", "f"], ["d", "a"], ["b"], ["a", "b", "c"]),
    ("objects larger than S go straight to M", 100, 0.1, admits(("big", 11), ("s", 10)),
     ["s"], ["big"], [], []),
    ("freq decays in M: reinserted with freq - 1, freq 0 evicted", 100, 0.1,
     admits(("a", 30), ("b", 30), ("c", 30)) + [("hit", "a")] + [("hit", "b")] * 3
     + admits(("d", 30)),
     [], ["a", "b", "d"], [], ["c"]),
    ("second round in M evicts the object whose credit ran out", 100, 0.1,
     admits(("a", 30), ("b", 30), ("c", 30)) + [("hit", "a")] + [("hit", "b")] * 3
     + admits(("d", 30), ("e", 30)),
     [], ["b", "d", "e"], [], ["c", "a"]),
    ("oversize object refused", 100, 0.1, admits(("a", 5), ("huge", 101)),
     ["a"], [], [], ["huge"]),
    ("object of exactly the capacity evicts everything else", 100, 0.1,
     admits(("a", 5), ("whole", 100)), [], ["whole"], ["a"], ["a"]),
    ("removed key's stale slot is skipped, not evicted early", 20, 0.5,
     admits(("a", 5), ("b", 5)) + [("remove", "a")]
     + admits(("a", 5), ("c", 5), ("d", 5), ("e", 5)),
     ["a", "e"], ["c", "d"], ["b"], ["b"]),
    ("re-admitting a resident M key replaces it in M", 20, 0.5,
     WARM + admits(("c", 2)), ["a", "b"], ["d", "c"], [], []),
    ("re-admitting a resident S key sends it to S's head", 100, 0.1,
     admits(("a", 2), ("b", 2), ("a", 3)), ["b", "a"], [], [], []),
    ("resize down: M over its new share goes first, then S", 20, 0.5,
     WARM + [("resize", 10)], ["b"], ["d"], ["a"], ["c", "a"]),
    ("resize down to zero empties everything", 20, 0.5,
     WARM + [("resize", 0)], [], [], ["a", "b"], ["c", "d", "a", "b"]),
]


@pytest.mark.parametrize(
    "capacity, ratio, ops, small, main, ghost, evicted",
    [row[1:] for row in SCENARIOS], ids=[row[0] for row in SCENARIOS])
def test_scenario(capacity, ratio, ops, small, main, ghost, evicted):
    policy = S3FIFO(capacity, small_ratio=ratio)
    assert run(policy, ops) == evicted
    assert policy.queues() == {"small": small, "main": main, "ghost": ghost}
    sizes = {}
    for op, *args in ops:
        if op == "admit":
            sizes[args[0]] = args[1]
    assert policy.used == sum(sizes[k] for k in small + main)
    assert len(policy) == len(small) + len(main)


def test_hits_do_not_move_and_saturate_at_three():
    policy = S3FIFO(100)
    run(policy, admits(("a", 1), ("b", 1)))
    for expected in (1, 2, 3, 3, 3):
        policy.hit("a")
        assert policy.frequency("a") == expected
    assert policy.queues()["small"] == ["a", "b"]


def test_promotion_to_main_resets_freq():
    policy = S3FIFO(20, small_ratio=0.5)
    run(policy, WARM + [("hit", "a")] * 3 + admits(("e", 5)))
    assert policy.where("a") == "main" and policy.frequency("a") == 0


def test_hit_on_missing_key_raises():
    with pytest.raises(KeyError):
        S3FIFO(100).hit("nope")


def test_remove():
    policy = S3FIFO(100)
    run(policy, admits(("a", 7), ("b", 50)))
    assert policy.remove("a") is True
    assert policy.remove("a") is False
    assert "a" not in policy and policy.where("a") is None
    assert policy.used == 50 and policy.stats()["small_bytes"] == 0
    assert policy.remove("b") is True and policy.used == 0


def test_many_removes_compact_the_queues():
    policy = S3FIFO(10**9)
    for i in range(5000):
        policy.admit(i, 1)
    for i in range(4990):
        policy.remove(i)
    assert policy.queues()["small"] + policy.queues()["main"] == list(range(4990, 5000))
    assert len(policy._small) + len(policy._main) < 2000


def test_ghost_is_bounded_by_main_objects():
    policy = S3FIFO(10_000, small_ratio=0.1)
    for i in range(20_000):  # all one-hit wonders
        policy.admit(i, 10)
    stats = policy.stats()
    assert stats["ghost_objects"] <= max(stats["main_objects"], 64)
    assert len(policy._ghost_q) <= 2 * stats["ghost_objects"] + 1024


def test_one_hit_wonders_do_not_displace_main():
    """A scan of never-again keys flows through S; the hot set stays in M."""
    policy = S3FIFO(1000, small_ratio=0.1)
    hot = [f"hot{i}" for i in range(80)]
    for key in hot:
        policy.admit(key, 10)
    for _ in range(2):
        for key in hot:
            if key in policy:
                policy.hit(key)
    for i in range(10_000):
        policy.admit(f"scan{i}", 10)
        for key in hot[:5]:
            policy.hit(key) if key in policy else policy.admit(key, 10)
    assert all(key in policy for key in hot[:5])
    assert sum(key in policy for key in hot) >= 60


def test_stats_and_repr():
    policy = S3FIFO(1000)
    run(policy, admits(("a", 10), ("b", 200)))
    assert policy.stats() == {
        "capacity": 1000, "used": 210, "objects": 2,
        "small_bytes": 10, "small_objects": 1, "small_capacity": 100,
        "main_bytes": 200, "main_objects": 1, "ghost_objects": 0,
    }
    assert repr(policy) == "<S3FIFO used=210/1000 small=1/10B main=1/200B ghost=0>"


@pytest.mark.parametrize("args", [(-1,), (10, 0.0), (10, 1.0)])
def test_bad_construction(args):
    with pytest.raises(ValueError):
        S3FIFO(*args)


def test_negative_size_rejected():
    with pytest.raises(ValueError):
        S3FIFO(10).admit("a", -1)
