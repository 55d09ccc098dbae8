"""``owncdn explain URL --client IP`` and ``owncdn probe URL``: one URL, across the fleet.

``explain`` prints, from the control plane's view: the service and config rule the
URL falls under (mode, cache policy, origins and their health), the location DNS
would choose for the client and why (``owncdn route explain``'s logic), and each
edge's cache state for the URL (``GET /v1/cache``: stored variants, tier, age, TTL
left, stale, tags). ``probe`` has every edge fetch the URL (``POST /v1/probe``) and
prints time to first byte and total time per location and edge.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import typer

from owncdn.cli.fleet_cmds import ControlOpt, EnvOpt, StateOpt, TokenOpt, _call, _fail, client

__all__ = ["explain", "probe", "register"]


def _config(api, env: str):
    """The latest version of `env` as the control plane holds it (secrets as placeholders)."""
    from owncdn.core.config import ConfigError, parse_config

    versions = _call(api.list_versions, env, 1)
    if not versions:
        _fail(f"environment {env!r} has no version yet: `owncdn apply` one first")
    number = versions[0]["number"]
    source = _call(api.get_version, env, number)["source"]
    try:
        return number, parse_config(source, f"{env} v{number}", lambda kind, name: "<secret>", env=env)
    except ConfigError as exc:
        _fail(f"{env} v{number} does not parse here: {exc}")


def rule_lines(cfg, number: int, svc, origins: list[dict]) -> list[str]:
    """The config rule and origins that apply (no I/O)."""
    cache = svc.cache
    lines = [f"config v{number}: service {svc.name} (mode {svc.mode}), hostnames {', '.join(svc.hostnames)}"]
    policy = ", ".join(f"{k}={v}" for k, v in cache.model_dump(mode="json", exclude_defaults=True).items())
    lines.append(f"  cache policy: {policy or 'defaults (RFC 9111: the origin decides)'}")
    health = {o["origin"]: o for o in origins if o["service"] == svc.name}
    for i, origin in enumerate(svc.origins, start=1):
        h = health.get(origin.url)
        state = "not checked" if h is None else ("up" if h["healthy"] else f"DOWN: {h['last_error']}")
        if h is not None and h.get("ms") is not None:
            state += f" ({h['ms']:.1f} ms, HTTP {h['status']})"
        lines.append(f"  origin {i}: {origin.url}  {state}")
    return lines


def cache_lines(states: list[dict]) -> list[str]:
    """Each edge's cache state for the URL (no I/O)."""
    lines = ["cache state on each edge:"]
    for s in sorted(states, key=lambda s: (s["location"], s["edge"])):
        head = f"  {s['location']:<8} {s['edge']:<14}"
        if s.get("error"):
            lines.append(f"{head} ? {s['error']}")
            continue
        variants = s.get("variants") or []
        if "release" in s:  # a push service (edge/adminapi.py Rule 1)
            lines.append(f"{head} {_release_line(s['release'])}")
            continue
        if not variants:
            lines.append(f"{head} not stored" + (f" ({s['why']})" if s.get("why") else ""))
        for v in variants:
            if v["tier"] == "disk":
                lines.append(f"{head} disk    stored (details when served)")
                continue
            ttl = "never fresh" if v["ttl_left"] is None else f"ttl left {v['ttl_left']:g}s"
            tags = f" tags {', '.join(v['tags'])}" if v["tags"] else ""
            vary = f" vary {v['vary']}" if v.get("vary") else ""
            lines.append(f"{head} memory  HTTP {v['status']} age {v['age']:g}s {ttl}"
                         f"{' STALE' if v['stale'] else ''} {v['size']} bytes{tags}{vary}")
    return lines


def _release_line(release: dict | None) -> str:
    """How an edge's live release answers the URL (no I/O)."""
    if release is None:
        return "no release of this push service here yet (503)"
    said = f"release {release['number']}: HTTP {release['status']}"
    if "location" in release:
        said += f" -> {release['location']}"
    elif "file" in release:
        said += f" {release['file']} ({release['size']} bytes{', sent as ' + release['coding'] if release.get('coding') else ''})"
    else:
        said += f" ({release['reason']})"
    return said + (f"; rule {release['rule']}" if release.get("rule") else "")


def explain(
    url: str = typer.Argument(..., help="The URL, e.g. https://www.example.com/path"),
    client_ip: str = typer.Option(..., "--client", help="The visitor's (or resolver's) address."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database (default: as `owncdn dns`)."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Why a visitor gets what they get for URL: config rule, origin, location, cache.

    The config rule and origin, the location DNS would choose, and each edge's cache
    state for it."""
    from owncdn.cli.route_cmd import explain_lines
    from owncdn.core.routing import EdgeHealth
    from owncdn.dns.geodefault import open_geo

    host = (urlsplit(url).hostname or "").lower()
    if not url.startswith(("http://", "https://")) or not host:
        _fail(f"expected an http(s) URL, got {url!r}")
    api = client(control_url, token, state_dir)
    number, cfg = _config(api, env)
    svc = cfg.service_for_host(host)
    if svc is None:
        _fail(f"no service of {env} v{number} has the hostname {host}")
    for line in rule_lines(cfg, number, svc, _call(api.origin_health, env)):
        typer.echo(line)
    edges = [EdgeHealth.from_dict(e) for e in _call(api.edge_health, env)]
    try:
        geo = open_geo(geoip)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    try:
        name = f"{svc.name}.{cfg.dns.zone.strip('.')}"
        for line in explain_lines(cfg, geo, client_ip, name, None, frozenset(), edges):
            typer.echo(line)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        if geo is not None:
            geo.close()
    for line in cache_lines(_call(api.cache_state, env, url)):
        typer.echo(line)


def probe(
    url: str = typer.Argument(..., help="The URL every edge fetches."),
    timeout: float = typer.Option(10.0, min=0.1, max=60, help="Seconds each edge may take."),
    host: str = typer.Option(None, "--host", help="Host header to send instead of the URL's (e.g. probe an "
                             "edge's address for a service's hostname)."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Time to first byte and total time for URL, measured from every edge."""
    from owncdn.cli import tables

    if not url.startswith(("http://", "https://")):
        _fail(f"expected an http(s) URL, got {url!r}")
    results = _call(client(control_url, token, state_dir).probe, env, url, timeout, host)
    if not results:
        _fail(f"{env} has no edges to probe from")
    table = tables.new(f"{url} from every edge ({env})")
    for col, justify in (("location", "left"), ("edge", "left"), ("status", "right"), ("ttfb ms", "right"),
                         ("total ms", "right"), ("bytes", "right"), ("cache", "left"), ("error", "left")):
        table.add_column(col, justify=justify)
    for r in sorted(results, key=lambda r: (r["location"], r["edge"])):
        num = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        table.add_row(r["location"], r["edge"], str(r.get("status") or "-"), num(r.get("ttfb_ms")),
                      num(r.get("total_ms")), str(r.get("bytes", "-")), r.get("x_cache") or "-", r.get("error") or "")
    tables.show(table)
    if all(r.get("error") for r in results):
        raise typer.Exit(1)


def print_origins(api, env: str) -> None:
    """The origins table of ``owncdn status`` (nothing when the monitor knows none)."""
    from owncdn.client import ApiError

    try:
        origins = api.origin_health(env)
    except ApiError:
        return  # an older control plane, or a replica without a monitor
    if not origins:
        return
    from owncdn.cli import tables

    table = tables.new(f"{env}: origins")
    for col in ("service", "origin", "health", "last answer"):
        table.add_column(col)
    for o in origins:
        state = "up" if o["healthy"] else f"DOWN: {o['last_error']}"
        if o["healthy"] and o["failures"]:
            state += f" ({o['failures']} failed: {o['last_error']})"
        answer = "-" if o["status"] is None else f"HTTP {o['status']} in {o['ms']:.1f} ms"
        table.add_row(o["service"], o["origin"], state, answer)
    tables.show(table)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
    app.command("probe")(probe)
