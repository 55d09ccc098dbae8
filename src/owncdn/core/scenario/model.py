"""The scenario file model (``cdn.scenarios.yaml``): one pydantic class per part.

    scenarios:
      - name: html is cached for a minute
        service: blog
        origin:
          /index.html: {status: 200, headers: {Cache-Control: max-age=60}, body: "<h1>hi</h1>"}
          /api/*: {headers: {Cache-Control: no-store}, body: "{}"}
        steps:
          - request: {path: /index.html}
            expect: {status: 200, x-cache: MISS, origin_requests: 1}
          - advance: 61s
          - request: {path: /index.html}
            expect: {x-cache: REVALIDATED}

Rule 1: unknown keys are errors, as in ``cdn.yaml``; every field says what it
does and its default.

Rule 2: a step is either a request (with an optional ``expect``) or an
``advance`` of the fake clock, never both.

Rule 3: an origin route maps a path (``*`` matches any characters, ``?``
one) to one reply, or to a list of replies given one per request (the last
one repeats).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from owncdn.core.config.units import Duration

__all__ = ["CACHE_STATES", "Expect", "Reply", "Request", "Scenario", "ScenarioFile", "Step"]

CACHE_STATES = ("HIT", "MISS", "STALE", "REVALIDATED", "PASS")
"""What the edge says in ``X-Cache``."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True)


def _header_names(value: Any) -> Any:
    if isinstance(value, dict):
        for name in value:
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


def _route_path(value: str) -> str:
    if not value.startswith(("/", "*")):
        raise ValueError(f"an origin path starts with '/' (or '*'), got {value!r}")
    return value


RoutePath = Annotated[str, AfterValidator(_route_path)]
Headers = Annotated[dict[str, str], BeforeValidator(_header_names)]
ExpectedHeaders = Annotated[dict[str, str | None], BeforeValidator(_header_names)]


class Reply(_Model):
    """One answer of the scripted origin."""

    status: int = Field(200, ge=100, le=599, description="Status code.")
    headers: Headers = Field(default_factory=dict, description="Response headers, e.g. `{Cache-Control: max-age=60}`.")
    body: str = Field("", description="Response body (UTF-8).")


Replies = Annotated[list[Reply], BeforeValidator(_one_or_many), Field(min_length=1)]
"""One reply, or a list given one per request (the last repeats)."""


class Request(_Model):
    """A request a visitor sends to the edge."""

    method: str = Field("GET", description="Request method.")
    path: str = Field(description="Request target: a path starting with `/`, with an optional query.")
    host: str | None = Field(None, description="Host header; default: the service's first hostname.")
    headers: Headers = Field(default_factory=dict, description="Request headers.")
    body: str | None = Field(None, description="Request body (UTF-8), e.g. for POST.")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"expected a method like GET or POST, got {value!r}")
        return value.upper()

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in " \r\n\t"):
            raise ValueError(f"expected a path starting with '/' and without spaces, got {value!r}")
        return value


class Expect(_Model):
    """What the edge's response must look like. Everything left out is not checked."""

    status: int | None = Field(None, description="Status code.")
    x_cache: Literal["HIT", "MISS", "STALE", "REVALIDATED", "PASS"] | None = Field(
        None, alias="x-cache", description="The X-Cache header: HIT, MISS, STALE, REVALIDATED or PASS.")
    headers: ExpectedHeaders = Field(default_factory=dict, description="Response headers and their exact values (names are case-insensitive); `null`: the header must be absent.")
    body: str | None = Field(None, description="The whole body, exactly.")
    body_contains: str | None = Field(None, description="Text the body must contain.")
    origin_requests: int | None = Field(None, ge=0, description="How many requests the origin has received since the scenario started.")
    origin_headers: ExpectedHeaders = Field(default_factory=dict, description="Headers of the last request the origin received; `null`: absent.")


class Step(_Model):
    """A request with its expectations, or an advance of the clock."""

    request: Request | None = Field(None, description="The request to send.")
    expect: Expect | None = Field(None, description="What the response must look like.")
    advance: Duration | None = Field(None, description="Move the edge's clock forward (e.g. `61` or `2m`); nothing sleeps.")

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if ("request" in data) == ("advance" in data):
                raise ValueError("a step has either 'request' (and 'expect') or 'advance'")
            if "expect" in data and "request" not in data:
                raise ValueError("'expect' belongs to a step with a 'request'")
        return data


class Scenario(_Model):
    """One case: a scripted origin, then steps run in order on a fresh edge and cache."""

    name: str = Field(min_length=1, description="What the scenario shows; printed with PASS / FAIL.")
    service: str | None = Field(None, description="The service of cdn.yaml to test; optional when there is only one.")
    origin: dict[RoutePath, Replies] = Field(
        default_factory=dict,
        description="Answers of the origin by path (`*` matches anything); one reply, or a list given one per request, the last repeating. Other paths get 404.")
    steps: list[Step] = Field(min_length=1, description="Requests and clock moves, in order.")



class ScenarioFile(_Model):
    """A scenario file: scenarios run against the edge with one config."""

    scenarios: list[Scenario] = Field(min_length=1, description="The scenarios, run in order.")

    @model_validator(mode="after")
    def _unique(self) -> ScenarioFile:
        seen: set[str] = set()
        problems = []
        for i, scenario in enumerate(self.scenarios):
            if scenario.name in seen:
                problems.append((("scenarios", i, "name"), f"scenario name {scenario.name!r} is used twice"))
            seen.add(scenario.name)
        if problems:  # the error type parse_config's messages know: one problem per sub-path
            raise PydanticCustomError("config_problems", "{summary}", {"summary": problems[0][1], "problems": problems})
        return self
