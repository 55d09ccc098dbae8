"""Push services go only to locations serving their current release (rows)."""

import pytest

from owncdn.core.routing.ready import ready_sites
from owncdn.core.routing.sites import Site

SITES = [Site("fra", 50.1, 8.7, ("192.0.2.1",)), Site("nyc", 40.7, -74.0, ("192.0.2.2",)),
         Site("sin", 1.3, 103.8, ("192.0.2.3",), healthy=False)]


@pytest.mark.parametrize("ready, expected", [
    (None, ["fra", "nyc", "sin"]),             # no release information: like any service
    ({"fra"}, ["fra"]),                        # only where the current release is served
    ({"fra", "sin"}, ["fra", "sin"]),          # health is still judged later, by ranking
    ({"lon"}, ["fra", "nyc", "sin"]),          # a ready location this zone does not know
    (set(), ["fra", "nyc", "sin"]),            # nobody ready yet: everyone rather than no one
])
def test_ready_sites(ready, expected):
    assert [s.name for s in ready_sites(SITES, ready)] == expected
