"""Secret references in config strings: ``${env:NAME}`` and ``${file:PATH}``.

Rule 1: any string scalar of ``cdn.yaml`` may hold references. They are
replaced at load time through a *resolver*, a callable ``resolve(kind, name)``
that returns the text or ``None`` (or raises :class:`UnresolvedReference` with
a reason). Core never reads the environment or files itself; ``owncdn.configfile``
passes a resolver backed by ``os.environ`` and the config file's directory.

Rule 2: ``$${`` is a literal ``${``. A ``$`` not followed by ``{`` is literal.

Rule 3: the text of a ``file`` reference loses one trailing newline.

Rule 4: a string that held at least one reference becomes a :class:`Secret`,
a ``str`` subclass whose value is the resolved text (so code uses it like any
string) but whose ``repr()`` is the reference text as written. Models keep
``Secret`` values in free-text fields, so ``repr(config)`` and error messages
show ``Secret('${env:ORIGIN_TOKEN}')``, never the value. ``str(secret)``,
f-strings and ``model_dump_json()`` give the real value, as the edge needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["Resolver", "Secret", "UnresolvedReference", "interpolate", "keep_secret"]

Resolver = Callable[[str, str], "str | None"]
"""``resolve(kind, name)`` with kind ``"env"`` or ``"file"``; ``None`` if unknown."""

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UnresolvedReference(Exception):
    """Raised by a resolver to say why a reference has no value.

    The message must not contain the secret (there is none yet) and should be
    short, e.g. ``"file 'token.txt' not found"``.
    """


class Secret(str):
    """A resolved string whose ``repr()`` shows the reference, not the value."""

    reference: str

    def __new__(cls, value: str, reference: str) -> Secret:
        obj = super().__new__(cls, value)
        obj.reference = reference
        return obj

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    def __getnewargs__(self) -> tuple[str, str]:  # pickle and deepcopy
        return (str(self), self.reference)


def keep_secret(value: Any, handler: Callable[[Any], Any]) -> Any:
    """A pydantic wrap validator: validate as usual, keep a ``Secret`` if unchanged."""
    result = handler(value)
    if isinstance(value, Secret) and result == value:
        return value
    return result


def interpolate(text: str, resolve: Resolver) -> str:
    """``text`` with every reference resolved and ``$${`` unescaped.

    Returns ``text`` unchanged (a plain ``str``) when it holds no ``${``, a plain
    ``str`` when it held only escapes, and a :class:`Secret` when it held a
    reference. Raises ``ValueError`` listing every reference that failed.
    """
    if "${" not in text:
        return text
    out: list[str] = []
    failures: list[str] = []
    found = False
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(text[pos:match.start()])
        pos = match.end()
        token = match.group(0)
        if token == "$${":
            out.append("${")
        elif token == "${":
            failures.append("unclosed '${' (write '$${' for a literal '${')")
        else:
            found = True
            try:
                out.append(_resolve_one(match.group(1), resolve))
            except ValueError as exc:
                failures.append(str(exc))
    out.append(text[pos:])
    if failures:
        raise ValueError("; ".join(failures))
    value = "".join(out)
    return Secret(value, text) if found else value


def _resolve_one(body: str, resolve: Resolver) -> str:
    kind, sep, name = body.partition(":")
    kind = kind.strip()
    if not sep or kind not in ("env", "file"):
        raise ValueError(
            f"unknown reference '${{{body}}}' (expected ${{env:NAME}} or ${{file:PATH}};"
            " write '$${' for a literal '${')"
        )
    if kind == "env" and not _ENV_NAME.fullmatch(name):
        raise ValueError(f"'${{{body}}}': {name!r} is not an environment variable name")
    if kind == "file" and not name.strip():
        raise ValueError("'${file:}' needs a path")
    try:
        value = resolve(kind, name)
    except UnresolvedReference as exc:
        raise ValueError(f"cannot resolve '${{{body}}}': {exc}") from None
    if value is None:
        what = "environment variable is not set" if kind == "env" else "file cannot be read"
        raise ValueError(f"cannot resolve '${{{body}}}': {what}")
    if kind == "file":
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    return value
