"""Checks across sections for redirect services (download mirrors), and the
hostnames those services add.

Rule 1: a redirect service sends visitors to its locations' own hostnames, so every
        location it uses (``redirect.locations``, or every location when that list is
        empty) has a ``hostname``, and it uses at least one location.
Rule 2: ``redirect.locations`` and ``redirect.fallback`` name configured locations,
        each listed once.
Rule 3: a location's hostname is served as a normal pull of the redirect service
        that uses the location, so it is nobody else's: no two locations share one,
        no service lists it among its hostnames, and at most one redirect service
        uses a location that has one.

The functions take the validated model objects but import nothing from ``model``,
which imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Path = tuple[str | int, ...]


def used_locations(service: Any, locations: Sequence[Any]) -> list[Any]:
    """The locations a redirect ``service`` sends visitors to, in its order; unknown
    names are left out (``redirect_problems`` reports them)."""
    names = service.redirect.locations or getattr(service, "locations", None)
    if not names:
        return list(locations)
    by_name = {loc.name: loc for loc in locations}
    return [by_name[name] for name in dict.fromkeys(names) if name in by_name]


def mirror_hosts(locations: Sequence[Any], services: Sequence[Any]) -> list[tuple[str, Any]]:
    """(location hostname, redirect service) pairs: the extra names the edge serves."""
    pairs: list[tuple[str, Any]] = []
    for svc in services:
        if svc.mode == "redirect":
            pairs += [(loc.hostname, svc) for loc in used_locations(svc, locations) if loc.hostname]
    return pairs


def redirect_problems(locations: Sequence[Any], services: Sequence[Any]) -> list[tuple[Path, str]]:
    """Every broken rule above, as (path below the config, message)."""
    problems = _shared_hostnames(locations, services)
    index = {loc.name: i for i, loc in enumerate(locations)}
    user: dict[str, str] = {}  # location name -> the redirect service using it
    for i, svc in enumerate(services):
        if svc.mode != "redirect":
            continue
        problems += _names(("services", i, "redirect"), svc.redirect, index)
        used = used_locations(svc, locations)
        if not used:
            problems.append((("services", i, "redirect", "locations"),
                             "a redirect service needs at least one location to send visitors to"))
        for loc in used:
            where = ("locations", index[loc.name], "hostname")
            if not loc.hostname:
                problems.append((where, f"location {loc.name!r} needs a hostname: redirect service "
                                        f"{svc.name!r} sends visitors to it (e.g. {loc.name}.{svc.hostnames[0].lstrip('*.')})"))
            elif user.setdefault(loc.name, svc.name) != svc.name:
                problems.append((where, f"the hostname of location {loc.name!r} already serves redirect service "
                                        f"{user[loc.name]!r}; give {svc.name!r} other locations with redirect.locations"))
    return problems


def _names(path: Path, settings: Any, index: dict[str, int]) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for j, name in enumerate(settings.locations):
        if name not in index:
            problems.append(((*path, "locations", j), f"no location is called {name!r}"))
        elif name in seen:
            problems.append(((*path, "locations", j), f"location {name!r} is listed twice"))
        seen.add(name)
    fallback = settings.fallback
    if fallback is not None and fallback not in index:
        problems.append(((*path, "fallback"), f"no location is called {fallback!r}"))
    elif fallback is not None and settings.locations and fallback not in settings.locations:
        problems.append(((*path, "fallback"), f"location {fallback!r} is not one of redirect.locations"))
    return problems


def _shared_hostnames(locations: Sequence[Any], services: Sequence[Any]) -> list[tuple[Path, str]]:
    owners = {host: svc.name for svc in services for host in svc.hostnames}
    problems: list[tuple[Path, str]] = []
    seen: dict[str, str] = {}
    for i, loc in enumerate(locations):
        host = loc.hostname
        if host is None:
            continue
        if host in owners:
            problems.append((("locations", i, "hostname"),
                             f"hostname {host!r} already belongs to service {owners[host]!r}"))
        elif seen.setdefault(host, loc.name) != loc.name:
            problems.append((("locations", i, "hostname"),
                             f"hostname {host!r} already belongs to location {seen[host]!r}"))
    return problems
