"""Invariants of both policies under random operation sequences (hypothesis).

After every operation: used <= capacity; used is the exact sum of resident sizes;
the resident set is exactly what was admitted minus what was returned as evicted or
removed (so every evicted key is returned exactly once, and only resident keys are);
for S3-FIFO every resident key sits in exactly one of S and M, G is disjoint from
them and bounded.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from owncdn.core.cache import LRU, S3FIFO

KEYS = st.integers(min_value=0, max_value=40)
SIZES = st.integers(min_value=0, max_value=60)


class PolicyMachine(RuleBasedStateMachine):
    make = None

    def __init__(self):
        super().__init__()
        self.resident: dict = {}  # key -> size, the model

    @initialize(capacity=st.integers(min_value=0, max_value=300))
    def start(self, capacity):
        self.policy = self.make(capacity)

    def _evicted(self, keys, admitted=None):
        assert len(keys) == len(set(keys)), f"evicted twice: {keys}"
        for key in keys:
            if key == admitted:
                continue
            assert key in self.resident, f"evicted a key that was not resident: {key}"
            del self.resident[key]

    @rule(key=KEYS, size=SIZES)
    def admit(self, key, size):
        evicted = self.policy.admit(key, size)
        self.resident.pop(key, None)
        self._evicted(evicted, admitted=key)
        if size > self.policy.capacity:
            assert evicted == [key] and key not in self.policy
        else:
            assert key not in evicted
            self.resident[key] = size

    @rule(key=KEYS)
    def hit(self, key):
        if key in self.policy:
            self.policy.hit(key)

    @rule(key=KEYS)
    def remove(self, key):
        assert self.policy.remove(key) == (key in self.resident)
        self.resident.pop(key, None)

    @rule(capacity=st.integers(min_value=0, max_value=300))
    def resize(self, capacity):
        self._evicted(self.policy.resize(capacity))

    @invariant()
    def accounting(self):
        policy = self.policy
        assert policy.used <= policy.capacity
        assert policy.used == sum(self.resident.values())
        assert len(policy) == len(self.resident)
        assert all(key in policy for key in self.resident)
        queued = [key for name, keys in policy.queues().items() if name != "ghost" for key in keys]
        assert sorted(queued) == sorted(self.resident), "each resident key in exactly one queue"


class S3FIFOMachine(PolicyMachine):
    make = staticmethod(lambda capacity: S3FIFO(capacity, small_ratio=0.25))

    @invariant()
    def queues(self):
        stats, queues = self.policy.stats(), self.policy.queues()
        assert stats["small_bytes"] == sum(self.resident[k] for k in queues["small"])
        assert stats["main_bytes"] == sum(self.resident[k] for k in queues["main"])
        assert stats["small_objects"] == len(queues["small"])
        assert not set(queues["ghost"]) & set(self.resident)
        assert len(queues["ghost"]) == len(set(queues["ghost"])) == stats["ghost_objects"]


class S3FIFODefaultRatioMachine(S3FIFOMachine):
    make = S3FIFO


class LRUMachine(PolicyMachine):
    make = LRU


SETTINGS = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestS3FIFOInvariants = S3FIFOMachine.TestCase
TestS3FIFOInvariants.settings = SETTINGS
TestS3FIFODefaultRatioInvariants = S3FIFODefaultRatioMachine.TestCase
TestS3FIFODefaultRatioInvariants.settings = SETTINGS
TestLRUInvariants = LRUMachine.TestCase
TestLRUInvariants.settings = SETTINGS
