"""The declarative config, ``cdn.yaml``: model, validation and JSON Schema.

Start at :func:`parse_config`: YAML text -> :class:`Config`, or a
:class:`ConfigError` listing every :class:`Problem` with file, line, column
and field. The parts:

- ``model``     the pydantic models, each field documented with its default
- ``units``     durations (``"1h30m"`` -> seconds) and byte sizes (``"256MiB"``)
- ``secrets``   ``${env:NAME}`` / ``${file:PATH}`` references and :class:`Secret`
- ``hostnames`` hostname rules and the ``Host`` -> service index
- ``headers``   header-rule name and value rules
- ``source``    YAML nodes with positions; duplicate keys; reference resolution
- ``messages``  pydantic errors -> plain problems at YAML lines
- ``errors``    :class:`Problem` and :class:`ConfigError`
- ``environments`` per-environment overlays merged over the base, on YAML nodes
- ``diff``      :func:`diff_configs` and :func:`render_plan`: what changes between two configs
- ``parse``     :func:`parse_config`, :func:`environment_names` and :func:`config_json_schema`

This package is pure: it never opens files or reads the environment. Reading
``cdn.yaml`` and resolving references from the environment and from files is
done by ``owncdn.configfile.load_config``, which passes a resolver in.
"""

from .diff import Change, diff_configs, keep_references, render_plan
from .errors import ConfigError, Problem
from .model import (
    CacheSettings,
    Config,
    ConfigFile,
    CookieSettings,
    EdgeSettings,
    HeaderOps,
    HeaderRules,
    Location,
    Origin,
    QueryStringSettings,
    Service,
    Timeouts,
)
from .parse import config_json_schema, environment_names, parse_config
from .secrets import Resolver, Secret, UnresolvedReference
from .units import ByteSize, Duration, parse_byte_size, parse_duration

__all__ = [
    "ByteSize", "CacheSettings", "Change", "Config", "ConfigError", "ConfigFile", "CookieSettings", "Duration",
    "EdgeSettings", "HeaderOps", "HeaderRules", "Location", "Origin", "Problem",
    "QueryStringSettings", "Resolver", "Secret", "Service", "Timeouts", "UnresolvedReference",
    "config_json_schema", "diff_configs", "environment_names", "keep_references", "render_plan", "parse_byte_size", "parse_config", "parse_duration",
]
