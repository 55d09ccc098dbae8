"""LRU's rules as scenarios; queues are listed least recent first."""

import pytest

from owncdn.core.cache import LRU

SCENARIOS = [
    # (name, capacity, ops, order, evicted)
    ("insert order is recency order", 100, [("admit", "a", 10), ("admit", "b", 10)],
     ["a", "b"], []),
    ("hit moves to the most recent end", 100,
     [("admit", "a", 10), ("admit", "b", 10), ("hit", "a")], ["b", "a"], []),
    ("least recent evicted first, by bytes", 30,
     [("admit", "a", 10), ("admit", "b", 10), ("admit", "c", 10), ("hit", "a"),
      ("admit", "d", 15)], ["a", "d"], ["b", "c"]),
    ("one-hit wonders flush the hot object", 20,
     [("admit", "hot", 10), ("hit", "hot"), ("admit", "x", 10), ("admit", "y", 10)],
     ["x", "y"], ["hot"]),
    ("oversize refused", 10, [("admit", "a", 5), ("admit", "big", 11)], ["a"], ["big"]),
    ("re-admit replaces and refreshes", 100,
     [("admit", "a", 10), ("admit", "b", 10), ("admit", "a", 30)], ["b", "a"], []),
    ("remove then resize", 30,
     [("admit", "a", 10), ("admit", "b", 10), ("admit", "c", 10), ("remove", "b"),
      ("resize", 10)], ["c"], ["a"]),
]


@pytest.mark.parametrize("capacity, ops, order, evicted",
                         [row[1:] for row in SCENARIOS], ids=[row[0] for row in SCENARIOS])
def test_scenario(capacity, ops, order, evicted):
    policy = LRU(capacity)
    out, sizes = [], {}
    for op, *args in ops:
        if op == "admit":
            sizes[args[0]] = args[1]
            out += policy.admit(*args)
        elif op == "hit":
            policy.hit(*args)
        elif op == "remove":
            policy.remove(*args)
        else:
            out += policy.resize(*args)
    assert out == evicted
    assert policy.queues() == {"lru": order}
    assert policy.used == sum(sizes[k] for k in order)


def test_remove_and_stats():
    policy = LRU(100)
    policy.admit("a", 40)
    assert policy.remove("a") and not policy.remove("a")
    assert policy.stats() == {"capacity": 100, "used": 0, "objects": 0}
    assert repr(policy) == "<LRU used=0/100 objects=0>"


def test_hit_on_missing_key_raises():
    with pytest.raises(KeyError):
        LRU(10).hit("nope")
