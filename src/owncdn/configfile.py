"""Reading ``cdn.yaml`` from disk: the I/O side of ``owncdn.core.config``.

``load_config(path)`` reads the file, resolves ``${env:NAME}`` from
``os.environ`` (or a mapping passed in) and ``${file:PATH}`` from files
relative to the config file's directory, and hands the text to the pure
``parse_config``. Every failure, including a missing or unreadable config
file, is a :class:`~owncdn.core.config.ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from owncdn.core.config import Config, ConfigError, Problem, Resolver, UnresolvedReference, parse_config

__all__ = ["load_config", "make_resolver", "read_config_text"]


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of ``path``; a missing or unreadable file is a :class:`ConfigError`."""
    name = os.fspath(path)
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = "file not found"
    except IsADirectoryError:
        problem = "is a directory, expected a YAML file"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except OSError as exc:
        problem = f"cannot read: {exc.strerror or exc}"
    raise ConfigError([Problem(name, 1, 1, "", problem)])


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *,
                environment: str | None = None) -> Config:
    """The validated config at ``path``; ``env`` (variables for ``${env:..}``) defaults
    to ``os.environ``; ``environment`` applies that overlay of ``environments:``."""
    name = os.fspath(path)
    text = read_config_text(name)
    resolver = make_resolver(Path(name).resolve().parent, os.environ if env is None else env)
    return parse_config(text, name, resolver, env=environment)


def make_resolver(base: Path, env: Mapping[str, str]) -> Resolver:
    """A resolver reading ``env`` and files relative to ``base``."""

    def resolve(kind: str, name: str) -> str | None:
        if kind == "env":
            return env.get(name)
        target = base / Path(name).expanduser()
        try:
            return target.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UnresolvedReference(f"file {str(target)!r} not found") from None
        except UnicodeDecodeError:
            raise UnresolvedReference(f"file {str(target)!r} is not UTF-8 text") from None
        except OSError as exc:
            raise UnresolvedReference(f"cannot read {str(target)!r}: {exc.strerror or exc}") from None

    return resolve
