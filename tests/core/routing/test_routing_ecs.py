"""ECS scope as rows: (source prefix, database network prefix, family, scope)."""

import pytest

from owncdn.core.routing import ecs_scope

ROWS = [
    (24, 16, 1, 16),  # decided by a /16: the answer holds for the whole /16
    (24, 24, 1, 24),
    (24, 28, 1, 28),  # longer than the source: the resolver's prefix was not specific enough
    (24, 40, 1, 32),  # never longer than an IPv4 address
    (24, None, 1, 0),  # no network decided the answer: valid for all
    (0, 16, 1, 0),  # source /0: the client asked for no tailoring
    (56, 48, 2, 48),
    (56, 64, 2, 64),
    (56, 130, 2, 128),
    (56, None, 2, 0),
    (32, 8, 4, 8),  # 4 and 6 are accepted for the ECS family codes 1 and 2
    (48, 32, 6, 32),
]


@pytest.mark.parametrize(("source", "network", "family", "scope"), ROWS)
def test_ecs_scope(source, network, family, scope):
    assert ecs_scope(source, network, family) == scope


BAD_ROWS = [(24, 16, 3), (33, 16, 1), (-1, 16, 1), (129, 8, 2), (24, -1, 1)]


@pytest.mark.parametrize(("source", "network", "family"), BAD_ROWS)
def test_ecs_scope_rejects_impossible_input(source, network, family):
    with pytest.raises(ValueError):
        ecs_scope(source, network, family)
