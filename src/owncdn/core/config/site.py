"""A push service's ``site`` block: how the edge serves its pushed release.

Rule 1: every field has a default; a push service without ``site`` serves pretty URLs,
``index.html`` for directories and ``404.html`` (when the release has one) for paths
that are not part of it, and compresses its text files (``core/content/compress.py``).
Only a push service may have a ``site`` block.

Rule 2: redirect rules and header rules are checked with the same code the edge
matches them with (``owncdn.core.content.redirects``, ``.globs``), so a file that
validates never fails at an edge; an error points at the offending field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WrapValidator, field_validator, model_validator
from pydantic_core import PydanticCustomError

from owncdn.core.content.globs import compile_glob
from owncdn.core.content.manifest import check_path
from owncdn.core.content.redirects import redirect_rule

from owncdn.core.fieldnames import SITE_MANAGED, check_header_name, check_header_value
from .secrets import keep_secret

__all__ = ["SiteHeaders", "SiteRedirect", "SiteSettings"]

_Name = Annotated[str, AfterValidator(check_header_name)]
_Value = Annotated[str, WrapValidator(keep_secret), AfterValidator(check_header_value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, populate_by_name=True)


def _file_path(value: str | None) -> str | None:
    if value is not None:
        problem = check_path(value)
        if problem:
            raise ValueError(f"expected a path inside the release like '404.html': {problem}")
    return value


class SiteRedirect(_Model):
    """A redirect rule: `from` an exact path or a `/prefix/*` splat, `to` a path or URL;
    with status 200 or 404 a rewrite: `to` a file of the release, sent in place."""

    from_: str = Field(alias="from", description="Path to match: exact (`/old`), or ending in `/*` to match the prefix and everything below it (`/blog/*`); a segment `:name` matches any one segment (`/news/:year/:slug`).")
    to: str = Field(description="Where to send the visitor: a path or an http(s):// URL; `:splat` stands for what `*` matched, `:name` for what that placeholder matched. For a rewrite, a path of the release.")
    status: Literal[200, 301, 302, 303, 307, 308, 404] = Field(301, description="Redirect status; or 200 or 404 for a rewrite: the file `to` names is sent with that status at the URL asked for, when no file of the release answers the path (a single-page app's `/*` -> `/index.html` with 200, a section's own not-found page with 404).")

    @model_validator(mode="after")
    def _rule(self) -> SiteRedirect:
        try:
            redirect_rule(self.from_, self.to, self.status)
        except ValueError as exc:
            message = str(exc)
            field = "from" if message.startswith("'from'") else "status" if message.startswith("status") else "to"
            raise PydanticCustomError("config_problems", "{summary}",
                                      {"summary": f"{field}: {message}", "problems": [((field,), message)]}) from None
        return self


class SiteHeaders(_Model):
    """Fields set on the responses for paths matching a pattern."""

    path: str = Field(description="Path pattern: `*` matches within one segment, `**` across segments, e.g. `/assets/**` or `/**/*.css`.")
    set: dict[_Name, _Value] = Field(description="Fields to set, e.g. `Cache-Control: public, max-age=31536000, immutable`.")

    @field_validator("path")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_glob(value)
        return value

    @field_validator("set")
    @classmethod
    def _names(cls, fields: dict[str, str]) -> dict[str, str]:
        for name in fields:
            if name.lower() in SITE_MANAGED:
                raise ValueError(f"{name!r} is derived from the file by the edge and cannot be set")
        return fields


class SiteSettings(_Model):
    """How the edge serves a push service's release (static site hosting)."""

    index: str = Field("index.html", description="File that answers for a directory path (`/docs/` -> `docs/index.html`).")
    pretty_urls: bool = Field(True, description="Serve `about.html` as `/about` and `about/index.html` as `/about/`; other spellings redirect (308) to these.")
    not_found: str | None = Field("404.html", description="Release file sent with status 404 for paths that are not part of the release (when the release has it); a file name alone is looked for from the path's directory up (a miss under /docs/ gets docs/404.html if there is one, else 404.html); null: a plain 404.")
    redirects: list[SiteRedirect] = Field(default_factory=list, description="Redirect rules, tried in order before the release's files; rewrites (status 200 or 404) after them, for paths no file answers.")
    headers: list[SiteHeaders] = Field(default_factory=list, description="Header rules by path pattern, applied in order (a later rule replaces a field an earlier one set).")
    compress: bool = Field(True, description="Send text files (HTML, CSS, JavaScript, JSON, SVG, ...) of 1 KiB to 16 MiB that have no precompressed sibling compressed with br or gzip, as Accept-Encoding prefers (with Vary), each edge making the compressed form once per file; false: as pushed.")

    @field_validator("index")
    @classmethod
    def _index(cls, value: str) -> str:
        if not value or "/" in value or _file_path(value) != value:
            raise ValueError(f"expected a file name without '/', like 'index.html', got {value!r}")
        return value

    @field_validator("not_found")
    @classmethod
    def _not_found(cls, value: str | None) -> str | None:
        return _file_path(value)
