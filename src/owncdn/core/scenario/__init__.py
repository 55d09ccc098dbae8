"""Edge scenarios users write next to ``cdn.yaml`` and run with ``owncdn test``.

A scenario file (``cdn.scenarios.yaml``) lists cases: a scripted origin, then
requests to the edge with what their responses must look like, and moves of
a fake clock between them. This package is the pure part:

- ``model``   the pydantic models of the file, each field documented
- ``parse``   :func:`parse_scenarios`: text -> :class:`ScenarioSuite` or a
              ``ConfigError`` with file:line problems, as for ``cdn.yaml``
- ``expect``  :func:`check_expect`: an :class:`Observed` response against an
              :class:`Expect`, as readable sentences

Running them (a fake origin and a real edge on loopback) is
``owncdn.testing.scenario``.
"""

from .expect import Observed, check_expect, step_failure
from .model import CACHE_STATES, Expect, Reply, Request, Scenario, ScenarioFile, Step
from .parse import ScenarioSuite, parse_scenarios

__all__ = [
    "CACHE_STATES", "Expect", "Observed", "Reply", "Request", "Scenario", "ScenarioFile", "ScenarioSuite",
    "Step", "check_expect", "parse_scenarios", "step_failure",
]
