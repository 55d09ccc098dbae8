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

__all__ = ["load_config", "make_resolver"]


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *,
                environment: str | None = None) -> Config:
    """The validated config at ``path``; ``env`` (variables for ``${env:..}``) defaults
    to ``os.environ``; ``environment`` applies that overlay of ``environments:``."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(name, 1, 1, "", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(name, 1, 1, "", "is a directory, expected a YAML file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(name, 1, 1, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError([Problem(name, 1, 1, "", f"cannot read: {exc.strerror or exc}")]) from None
    base = Path(name).resolve().parent
    resolver = make_resolver(base, os.environ if env is None else env)
    if environment is None:
        return parse_config(text, name, resolver)
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
