"""Traffic numbers and access logs from the control plane's analytics:
`owncdn stats`, `owncdn stats top`, `owncdn logs tail`, `owncdn logs query`.

Where the control plane is and which token to use: as every fleet command
(`--control` / `OWNCDN_CONTROL`, `--token` / `OWNCDN_TOKEN`, else the state directory).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from owncdn.cli.fleet_cmds import ControlOpt, StateOpt, TokenOpt, _call, client

__all__ = ["register"]

logs_app = typer.Typer(no_args_is_help=True, help="The edges' access logs, shipped to the control plane.")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def stats(
    service: str = typer.Option(None, "--service", "-s", help="Only this service."),
    location: str = typer.Option(None, "--location", "-l", help="Only this edge location."),
    since: str = typer.Option("1h", "--since", help="How far back: 15m, 1h, 7d ..."),
    bucket: str = typer.Option(None, "--bucket", help="1m, 1h or 1d (default: by --since)."),
    top: str = typer.Option(None, "--top", help="Also list the top url, referrer or country."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
    control: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Requests, bytes served, origin offload, hit ratio, status classes and TTFB per time bucket."""
    from owncdn.cli import tables
    from owncdn.core.logs.window import parse_duration

    try:
        span = parse_duration(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    bucket = bucket or ("1m" if span <= 3 * 3600 else "1h" if span <= 3 * 86400 else "1d")
    with client(control, token, state_dir) as api:
        data = _call(api.stats, service=service, location=location, since=since, bucket=bucket)
        ranked = _call(api.top, top, service=service, location=location, since=since) if top else None
    if as_json:
        typer.echo(json.dumps({**data, **({"top": ranked} if top else {})}, indent=2))
        return
    what = " ".join(x for x in (service and f"service {service}", location and f"location {location}") if x)
    table = tables.new(f"{what or 'all services'}, {data['from']} .. {data['to']}, per {bucket}")
    for name in ("time (UTC)", "requests", "served", "from origin", "offload", "hit ratio", "2xx/3xx/4xx/5xx",
                 "TTFB ms p50/p95/p99"):
        table.add_column(name, justify="left" if name == "time (UTC)" else "right")
    rows = data["buckets"] + [{"bucket": "total", **data["total"]}]
    for i, r in enumerate(rows):
        last = i == len(rows) - 1
        when = r["bucket"] if last else r["bucket"][5:16].replace("T", " ")
        ttfb = "" if last else "/".join(_ms(r[k]) for k in ("ttfb_p50", "ttfb_p95", "ttfb_p99"))
        table.add_row(when, str(r["requests"]), _size(r["bytes"]), _size(r["origin_bytes"]),
                      _pct(r["origin_offload"]), _pct(r["hit_ratio"]),
                      "/".join(str(r["status"][k]) for k in ("2xx", "3xx", "4xx", "5xx")), ttfb,
                      end_section=i == len(rows) - 2)
    if ranked is None:
        tables.show(table)
    else:
        top_table = tables.new(f"top {top}")
        for name in (top, "requests", "bytes"):
            top_table.add_column(name, justify="left" if name == top else "right")
        for r in ranked:
            top_table.add_row(str(r["value"] if r["value"] is not None else "-"), str(r["requests"]), _size(r["bytes"]))
        tables.show(table, top_table)


def _line(x: dict) -> str:
    return (f"{x['time']} {x['edge']:<10} {x['status']} {x['cache']:<11} {x['method']} {x['host']}{x['path']}"
            f" {x['bytes']}B ttfb={_ms(x.get('ttfb_ms'))}ms {x['request_id']}")


@logs_app.command("tail")
def tail(
    service: str = typer.Option(None, "--service", "-s", help="Only this service."),
    follow: bool = typer.Option(True, "--follow/--no-follow", "-f", help="Keep printing new lines as they arrive."),
    lines: int = typer.Option(20, "--lines", "-n", min=1, max=5000, help="How many of the newest lines first."),
    as_json: bool = typer.Option(False, "--json", help="Print each line as JSON."),
    control: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """The newest access-log lines from every edge; with --follow (the default), new ones as they arrive."""
    with client(control, token, state_dir) as api:
        got = _call(api.logs_tail, 0, service, 0, lines)
        while True:
            for x in got["lines"]:
                typer.echo(json.dumps(x) if as_json else _line(x))
            if not follow:
                return
            try:
                got = _call(api.logs_tail, got["next"], service, 25, 1000)
            except KeyboardInterrupt:
                return


@logs_app.command("query")
def query(
    sql: str = typer.Argument(..., help="One SELECT over the view `logs`, e.g. \"SELECT status, count(*) FROM logs GROUP BY 1\"."),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="Most rows."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds before the query is stopped."),
    as_json: bool = typer.Option(False, "--json", help="Print {columns, rows, truncated} as JSON."),
    control: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Run read-only SQL (DuckDB) over the shipped logs; needs an admin token."""
    from owncdn.cli import tables

    with client(control, token, state_dir) as api:
        got = _call(api.logs_query, sql, limit, timeout)
    if as_json:
        typer.echo(json.dumps(got, indent=2))
        return
    table = tables.new()
    for name in got["columns"]:
        table.add_column(name)
    for row in got["rows"]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    tables.show(table)
    if got["truncated"]:
        typer.echo(f"(first {limit} rows; use --limit for more)")


def register(app: typer.Typer) -> None:
    app.command()(stats)
    app.add_typer(logs_app, name="logs")
