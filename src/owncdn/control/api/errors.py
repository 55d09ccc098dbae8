"""Every error the API returns has one JSON shape, including FastAPI's own.

Rule 1: the body is ``{"error": {"status", "code", "message", "problems"?}}``;
``code`` is a short stable word for programs, ``message`` a sentence a person
can act on, ``problems`` a list of strings when there are several things wrong.

Rule 2: endpoints raise :class:`ApiProblem`; the handlers here translate it,
Starlette's ``HTTPException`` (unknown route, wrong method), request
validation errors (malformed JSON -> 400, wrong fields -> 422) and the store's
``NotFound`` / ``Conflict`` / ``StoreError``.

Rule 3: a request that ends in an error has changed nothing: endpoints check
everything before they write.

Rule 4: a request whose client went away before its body ended (Starlette's
``ClientDisconnect``: a push stopped with Ctrl-C, a lost connection) is logged as one
INFO line naming it, not as an application error with a traceback; its answer (400
``body_cut``) reaches nobody.

Rule 5: a disk that is full (``ENOSPC``, or a quota: ``EDQUOT``) while the control
plane writes (a push's blobs, most often) answers 507 ``no_space`` saying so and what
to do, logged as one ERROR line; the blobs verified before it stay stored, so the push
sends only the rest once there is room. Any other error nobody foresaw answers 500
``internal_error`` in the same JSON shape (Rule 1), its traceback logged as before.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from owncdn.control.store import Conflict, NotFound, StoreError

from .schemas import ErrorResponse

__all__ = ["ApiProblem", "error_responses", "install_error_handlers"]

log = logging.getLogger("owncdn.control.api")

_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})  # Rule 5

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid", 500: "internal_error", 503: "unavailable", 507: "no_space",
}

_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not JSON).",
    401: "No token, or a token that is unknown or revoked.",
    403: "The token lacks the scope this endpoint needs.",
    404: "The thing named in the path does not exist.",
    409: "Conflicts with what exists (e.g. a duplicate name).",
    410: "It existed once and was removed (e.g. a release's manifest, pruned by blob GC).",
    422: "The request is well-formed but its content is invalid; see `problems`.",
    507: "The control plane's disk is full (`no_space`).",
}


class ApiProblem(Exception):
    """An error response: raise it from an endpoint or a dependency."""

    def __init__(self, status: int, code: str, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems) if problems else None

    def __repr__(self) -> str:
        return f"ApiProblem({self.status}, {self.code!r}, {self.message!r})"


def error_body(status: int, code: str, message: str, problems: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON error document."""
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if problems:
        error["problems"] = list(problems)
    return {"error": error}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for these error statuses."""
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(s, "Error.")} for s in statuses}


def _json(status: int, code: str, message: str, problems: Sequence[str] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, problems), status_code=status, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _json(exc.status, exc.code, exc.message, exc.problems, headers)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = f"there is no endpoint {request.method} {request.url.path}; the API is described at /openapi.json and /docs"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else "")
    else:
        message = str(exc.detail) if exc.detail else f"HTTP {status}"
    return _json(status, _CODES.get(status, "error"), message, headers=exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            message = "the request body is not valid JSON" + (f" ({reason})" if reason else "")
            return _json(400, "malformed_json", message + "; send a JSON object with Content-Type: application/json")
    problems = [_describe(error) for error in errors]
    message = problems[0] if len(problems) == 1 else f"the request has {len(problems)} problems: " + "; ".join(problems)
    return _json(422, "invalid_request", message, problems)


def _describe(error: dict[str, Any]) -> str:
    """``scopes[0]: Input should be ...`` from one pydantic error."""
    loc = tuple(error.get("loc", ()))
    if loc == ("body",):  # the body as a whole
        if error.get("type") == "missing":
            return "request body: missing; send a JSON object with Content-Type: application/json"
        return "request body: expected a JSON object (with Content-Type: application/json)"
    where = ""
    for part in loc[1:] if loc[:1] == ("body",) else loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    msg = str(error.get("msg", "invalid value"))
    if error.get("type") == "missing":
        msg = "this field is required"
    elif error.get("type") == "extra_forbidden":
        msg = "unknown field"
    return f"{where}: {msg}" if where else msg


async def _on_client_gone(request: Request, exc: Exception) -> JSONResponse:
    log.info("%s %s: the client went away before the body's end", request.method, request.url.path)
    return _json(400, "body_cut", "the request's body ended before its length")


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return _json(404, "not_found", str(exc) or "not found")


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return _json(409, "conflict", str(exc) or "conflicts with what exists")


async def _on_store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return _json(503, "store_error", f"the control plane's state store failed ({exc}); try again, and tell the operator if it persists")


async def _on_os_error(request: Request, exc: Exception) -> JSONResponse:
    """Rule 5: a full disk; other errors of the system are Rule 5's unforeseen ones."""
    assert isinstance(exc, OSError)
    if exc.errno not in _SPACE:
        raise exc  # to _on_unexpected, through Starlette's ServerErrorMiddleware (which logs it)
    where = f" ({exc.filename})" if exc.filename else ""
    log.error("%s %s: no space left on the control plane's disk%s: %s", request.method, request.url.path, where,
              exc.strerror)
    return _json(507, "no_space", f"the control plane's disk is full ({exc.strerror}); what was stored before "
                 "stays stored. Free space there, or remove the blobs no release needs with `owncdn blobs gc`, "
                 "then try again")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Rule 5: the JSON shape for a 500 (Starlette logs the traceback)."""
    return _json(500, "internal_error", f"the control plane failed on {request.method} {request.url.path} "
                 f"({type(exc).__name__}); its log says why")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler of this module on ``app``."""
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(Conflict, _on_conflict)
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(OSError, _on_os_error)
    app.add_exception_handler(Exception, _on_unexpected)  # Rule 5 (Starlette: the ServerErrorMiddleware's)
