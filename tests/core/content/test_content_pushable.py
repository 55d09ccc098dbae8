"""Which services take a push (core/content/pushable.py): a table."""

import pytest

from owncdn.core.content.pushable import refusal

MODES = {"blog": "push", "shop": "pull"}


@pytest.mark.parametrize("name, modes, want", [
    ("blog", MODES, None),
    ("shop", MODES, (422, "not_a_push_service",
                     "service 'shop' in 'prod' has mode 'pull'; set mode: push (and drop its origins) to push releases to it")),
    ("nope", MODES, (404, "unknown_service", "environment 'prod' has no service 'nope' in its latest version; "
                                             "its services: blog, shop. Add it with mode: push and apply first")),
    ("blog", {}, (404, "unknown_service", "environment 'prod' has no service 'blog' in its latest version; "
                                          "it has no services yet. Add it with mode: push and apply first")),
])
def test_refusal(name, modes, want):
    assert refusal("prod", name, modes) == want
