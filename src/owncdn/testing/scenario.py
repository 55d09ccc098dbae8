"""Running scenario files against the real edge code, in this process, on loopback.

    suite = parse_scenarios(text, "cdn.scenarios.yaml", [s.name for s in config.services])
    results = await run_suite(config, suite)        # or run_scenarios(...) from sync code

For each scenario: a scripted origin (`ScriptedOrigin`) starts on 127.0.0.1, every
origin URL of the config is replaced by the origin's URL (keeping path prefixes),
an `EdgeServer` starts on 127.0.0.1 with a `FakeClock`, and each step sends one
request on a fresh connection (or moves the clock). After each request the runner
waits until the edge has no fill in flight, so background revalidation is
finished before the next step. Nothing leaves the machine: the runner refuses a
config whose origins are not the scripted origin.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass

from owncdn.core.config import Config, Origin, Service
from owncdn.core.scenario import Observed, Scenario, ScenarioSuite, check_expect, step_failure
from owncdn.core.scenario.model import Reply as ScriptedReply
from owncdn.core.scenario.model import Request
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient
from owncdn.testing.clock import FakeClock
from owncdn.testing.origin import FakeOrigin, Reply, SeenRequest

__all__ = ["ScenarioResult", "ScriptedOrigin", "config_with_origin", "run_scenario", "run_scenarios", "run_suite"]

SETTLE_SECONDS = 10.0
"""Longest wait for the edge's fills in flight to finish after a request."""


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    failure: str | None = None   # "step 3: expected X-Cache HIT, got MISS"
    line: int = 0                # line of the failing step (or of the scenario)

    @property
    def passed(self) -> bool:
        return self.failure is None


class ScriptedOrigin(FakeOrigin):
    """A `FakeOrigin` answering from a scenario's routes: exact paths first, then
    `*` / `?` patterns in file order; each route gives its replies one per request,
    the last repeating; anything else is 404."""

    def __init__(self, routes: dict[str, list[ScriptedReply]]) -> None:
        super().__init__("127.0.0.1")
        self.script = {path: [_reply(r) for r in replies] for path, replies in routes.items()}
        self.served: dict[str, int] = {}

    def reply_for(self, req: SeenRequest) -> Reply:
        route = self._match(req.path)
        if route is None:
            return self.default
        replies = self.script[route]
        count = self.served.get(route, 0)
        self.served[route] = count + 1
        return replies[min(count, len(replies) - 1)]

    def _match(self, target: str) -> str | None:
        path = target.split("?", 1)[0]
        for candidate in (target, path):
            if candidate in self.script:
                return candidate
        return next((p for p in self.script if any(c in p for c in "*?[") and fnmatch.fnmatchcase(path, p)), None)


def _reply(reply: ScriptedReply) -> Reply:
    return Reply(reply.status, reply.body.encode(), dict(reply.headers))


def config_with_origin(config: Config, url: str) -> Config:
    """``config`` with every origin of every service replaced by ``url`` (path prefixes kept).

    The config is validated again, so the host index points at the new services.
    """
    data = config.model_dump(mode="python")
    for service in data["services"]:
        service["origins"] = [
            {"url": url + Origin.model_validate(o).path_prefix, "tls_verify": o["tls_verify"]}
            for o in service["origins"]
        ]
    swapped = Config.model_validate(data)
    expected = Origin(url=url)
    for service in swapped.services:
        for origin in service.origins:
            if (origin.host, origin.port) != (expected.host, expected.port):
                raise RuntimeError(f"service {service.name!r} still has origin {origin.url!r}")
    return swapped


async def run_suite(config: Config, suite: ScenarioSuite) -> list[ScenarioResult]:
    """Run every scenario of ``suite`` against ``config``, one fresh edge each."""
    results = []
    for i, scenario in enumerate(suite.scenarios):
        results.append(await run_scenario(config, scenario, suite.lines[i][1], suite.lines[i][0]))
    return results


def run_scenarios(config: Config, suite: ScenarioSuite) -> list[ScenarioResult]:
    """`run_suite` from synchronous code, on uvloop."""
    import uvloop

    return uvloop.run(run_suite(config, suite))


async def run_scenario(config: Config, scenario: Scenario, step_lines: list[int] | None = None,
                       line: int = 0) -> ScenarioResult:
    """Run one scenario; a failure names the first step that did not match."""
    service = config.service(scenario.service) if scenario.service else (config.services or [None])[0]
    if service is None:
        return ScenarioResult(scenario.name, f"no service {scenario.service!r} in the config", line)
    origin = await ScriptedOrigin(scenario.origin).start()
    server = None
    try:
        clock = FakeClock()
        server = await EdgeServer.start(config_with_origin(config, origin.url), clock=clock, access_log="off")
        for number, step in enumerate(scenario.steps, 1):
            failure = await _run_step(step, service, server, origin, clock)
            if failure:
                step_line = step_lines[number - 1] if step_lines else line
                return ScenarioResult(scenario.name, step_failure(number, failure), step_line)
        return ScenarioResult(scenario.name, None, line)
    finally:
        if server is not None:
            await server.close()
        await origin.close()


async def _run_step(step, service: Service, server: EdgeServer, origin: ScriptedOrigin,
                    clock: FakeClock) -> list[str]:
    if step.advance is not None:
        clock.advance(step.advance)
        return []
    try:
        response = await _send(step.request, service, server.port)
    except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
        return [f"the request failed: {exc or type(exc).__name__}"]
    if not await _settle(server):
        return [f"the edge still fetched from the origin after {SETTLE_SECONDS:g}s"]
    if step.expect is None:
        return []
    last = origin.requests[-1].headers if origin.requests else None
    seen = Observed(response.status, response.headers, response.body, len(origin.requests), last)
    return check_expect(step.expect, seen)


async def _send(request: Request, service: Service, port: int):
    headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    host = next((v for k, v in request.headers.items() if k.lower() == "host"), None)
    host = request.host or host or default_host(service)
    body = request.body.encode() if request.body is not None else None
    async with HttpClient("127.0.0.1", port, default_host=host) as client:
        return await client.request(request.method, request.path, headers=headers, body=body)


def default_host(service: Service) -> str:
    """The service's first hostname that is not a wildcard, else its first with ``*`` as ``www``."""
    plain = [h for h in service.hostnames if not h.startswith("*.")]
    return plain[0] if plain else "www" + service.hostnames[0][1:]


async def _settle(server: EdgeServer) -> bool:
    """Wait until the edge has no origin fetch in flight (background revalidation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while server.edge.fills:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True
