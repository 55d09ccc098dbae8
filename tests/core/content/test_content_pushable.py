"""Which services take a push (core/content/pushable.py): a table."""

import pytest

from owncdn.core.content.pushable import refusal

MODES = {"blog": "push", "shop": "pull"}


@pytest.mark.parametrize("name, modes, envs, want", [
    ("blog", MODES, None, None),
    ("blog", MODES, ["prod"], None),
    ("shop", MODES, None, (422, "not_a_push_service",
                     "service 'shop' in 'prod' has mode 'pull'; set mode: push (and drop its origins) to push releases to it")),
    ("nope", MODES, ["prod"], (404, "unknown_service", "environment 'prod' has no service 'nope' in its latest version; "
                                             "its services: blog, shop. Add it with mode: push and apply first")),
    ("blog", {}, None, (404, "unknown_service", "environment 'prod' has no service 'blog' in its latest version; "
                                                "it has no services yet. Add it with mode: push and apply first")),
    ("blog", {}, ["prod"], (404, "unknown_service", "environment 'prod' has no service 'blog' in its latest "
                                                    "version; it has no services yet. Add it with mode: push and "
                                                    "apply first")),
    # Rule 2: an environment with no version at all, mistyped or never applied
    ("blog", {}, ["production", "staging"], (404, "unknown_service",
                                             "environment 'prod' has no config version yet (those with one: "
                                             "production, staging): mistyped, or apply a cdn.yaml with a push "
                                             "service 'blog' to it first: owncdn apply cdn.yaml --env prod")),
    ("blog", {}, [], (404, "unknown_service",
                      "environment 'prod' has no config version yet: mistyped, or apply a cdn.yaml with a push "
                      "service 'blog' to it first: owncdn apply cdn.yaml --env prod")),
])
def test_refusal(name, modes, envs, want):
    assert refusal("prod", name, modes, envs) == want
