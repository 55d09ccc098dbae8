"""`owncdn world`: a simulated world with real intercontinental latencies.

Builds network namespaces for an origin (Frankfurt), edge locations and visitor
cities, joined by the user-space WAN emulator (``owncdn.testing.wan``), runs the
real control plane, DNS servers and edges inside them (``owncdn.testing.world``),
and measures a small site from every city in each scenario: a table per scenario
on the terminal, and in ``--out`` the tables (``results.md``), the raw numbers
(``results.json``) and SVG charts. Needs root (namespaces and TUN devices).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
from pathlib import Path

import typer

from owncdn.core.world.chart import bar_chart
from owncdn.core.world.emulator import probe_text
from owncdn.core.world.emulator import text as emulator_text
from owncdn.core.world.latency import FIBRE_KM_PER_S, LAST_MILE_S, ROUTING_FACTOR
from owncdn.core.world.report import table

TITLES = {"origin": "origin only (Frankfurt, no CDN)", "pull-first": "pull CDN, first visit (every object a miss)",
          "pull-warm": "pull CDN, warm (every object a hit)",
          "https-warm": "pull CDN, warm, over HTTPS (TLS 1.3, a full handshake per connection)",
          "https-return": "pull CDN, warm, over HTTPS, a returning visitor (TLS 1.3 session resumed)",
          "push": "push CDN (release on every edge)"}


def _push_available() -> bool:
    done = subprocess.run([sys.executable, "-m", "owncdn.cli", "push", "--help"], capture_output=True)
    return done.returncode == 0


def _row(v) -> dict:
    return {"city": v.city.name, "server": v.server.name, "dns": v.dns, "connect": v.connect, "tls": v.tls,
            "ttfb": v.ttfb, "headers": v.headers, "page": v.page, "floor": v.floor, "cache": v.cache,
            "scenario": v.scenario, "tls_cpu": v.tls_cpu, "resumed": v.resumed}


def world(
    cities: int = typer.Option(3, min=1, max=13, help="Visitor cities (first N of: Frankfurt, Sydney, Virginia, "
                               "Singapore, Oregon, Mumbai, Tokyo, Sao Paulo, London, Ireland, Ohio, California, Seoul)."),
    locations: int = typer.Option(2, min=1, max=9, help="Edge locations (first N of: Frankfurt, Singapore, "
                                  "Virginia, Oregon, Sydney, Mumbai, Tokyo, Sao Paulo, London)."),
    scale: float = typer.Option(1.0, min=0.1, max=20.0, help="Multiply every delay (1: the real world)."),
    out: Path = typer.Option(Path("world-out"), help="Where tables, results.json and the SVG charts go."),
    state_dir: Path = typer.Option(Path(".owncdn-world"), help="State of the world's processes and their logs "
                                   "(wiped at start if empty or a previous world's)."),
    repeat: int = typer.Option(1, min=1, max=9, help="Load the page this many times per city and scenario and "
                               "show the load with the median TTFB (first visits use new URLs each time)."),
    failures: bool = typer.Option(True, help="After the scenarios, the failure scenarios: the origin stalls, "
                                  "an edge dies (needs 2+ locations), the origin dies, the control plane dies."),
) -> None:
    """Simulate the world: visitors in far cities, edges, an origin in Frankfurt, real latencies."""
    from owncdn.testing.world import World

    if os.geteuid() != 0:
        typer.echo("owncdn world: needs root (network namespaces and TUN devices)", err=True)
        raise typer.Exit(2)
    if shutil.which("ip") is None:
        typer.echo("owncdn world: needs `ip` (Debian package iproute2)", err=True)
        raise typer.Exit(2)
    push = _push_available()
    w = World(state_dir, cities=cities, locations=locations, scale=scale, push=push)
    typer.echo(f"latency model: great-circle km / {FIBRE_KM_PER_S:,.0f} km/s x {ROUTING_FACTOR} "
               f"+ {LAST_MILE_S * 1000:g} ms, one way, x {scale:g}")
    typer.echo(f"building: {len(w.visitors)} visitor cities, {len(w.locations)} edge locations "
               f"({', '.join(c.name for c in w.locations)}), origin in Frankfurt ...")
    results: dict[str, list[dict]] = {}
    probe = None
    try:
        w.start()
        probe = w.probe_emulator()
        typer.echo(f"\nemulator: {probe_text(probe)}")
        scenarios = ["origin", "pull-first", "pull-warm", "https-warm", "https-return"]
        if push:
            w.push_site()
            scenarios.append("push")
        for scenario in scenarios:
            rows = [_median_row([w.visit(c, scenario, run=str(i)) for i in range(repeat)]) for c in w.visitors]
            results[scenario] = rows
            typer.echo(f"\n{scenario}: {TITLES[scenario]}\n" + table(rows).rstrip())
            if client_tls_text(rows):
                typer.echo(client_tls_text(rows))
        if not push:
            typer.echo("\npush: not available")
        if failures:
            f = w.origin_stalls()
            results["origin-stalls"] = [f]
            typer.echo(f"\norigin-stalls: {FAILURES['origin-stalls'](f)}")
            if len(w.locations) > 1:
                far = max(w.visitors, key=lambda c: w.model.one_way(c, w.origin_city))
                f = w.edge_dies(far)
                results["edge-dies"] = [f]
                typer.echo(f"\nedge-dies: {_failure_text(f)}")
            for name, run in (("origin-dies", w.origin_dies), ("control-dies", w.control_dies)):
                f = run()
                results[name] = [f]
                typer.echo(f"\n{name}: {FAILURES[name](f)}")
    except RuntimeError as exc:
        typer.echo(f"owncdn world: {exc}; see {w.state_dir / 'logs'}", err=True)
        raise typer.Exit(1) from None
    finally:
        w.close()
    results["emulator"] = [{"probe": probe, **w.emulator()}]
    typer.echo(f"\nemulator: forwarder {' '.join(w.wan.modes) or '(default timers)'}; "
               f"{emulator_text(results['emulator'][0]['lateness'])}")
    _write(out, w, results, scale)
    typer.echo(f"\nwrote {out}/results.md, results.json, ttfb.svg, page.svg")


def client_tls_text(rows: list[dict]) -> str:
    """Over HTTPS: how much of the TLS column is the measuring client's own CPU (visit rule 2),
    and how many of the loads shown resumed their session (visit rule 7)."""
    spent = sorted(r["tls_cpu"] for r in rows if r.get("tls_cpu") is not None)
    if not spent:
        return ""
    resumed = sum(1 for r in rows if r.get("resumed"))
    return (f"The visitors' own CPU in the TLS handshake (Python's ssl, OpenSSL {ssl.OPENSSL_VERSION.split()[1]}): "
            f"median {statistics.median(spent) * 1000:.2f} ms, {spent[0] * 1000:.2f}-{spent[-1] * 1000:.2f} ms; "
            f"the TLS column holds it, the round trip and the edge's part. "
            f"Sessions resumed: {resumed} of {len(rows)} page loads shown.")


def _median_row(visits: list) -> dict:
    """The row of the load with the median TTFB, with every load's TTFB in ``ttfb_runs``."""
    row = _row(sorted(visits, key=lambda v: v.ttfb)[len(visits) // 2])
    row["ttfb_runs"] = [v.ttfb for v in visits]
    return row


def _failure_text(f: dict) -> str:
    moved = (f"DNS sent them to {f['moved_to']} after {f['dns_moved_after']:.1f} s"
             if f["dns_moved_after"] is not None else "DNS did not move them within the watch")
    sizes = "/".join(str(n) for n in f.get("answer_sizes", [])) or "?"
    return (f"The edge in {f['edge']} killed (SIGKILL) under visitors in {f['city']}: {moved}; "
            f"{f['failed']} of {f['requests']} requests failed meanwhile (one every 0.2 s). DNS answers held "
            f"{sizes} address(es); a visitor retrying the next address would have seen "
            f"{f.get('failed_with_retry', '?')} failures")


def _stalls_text(f: dict) -> str:
    caches = ", ".join(f"{k} {v}" for k, v in sorted(f["cache"].items()))
    return (f"The origin stopped (SIGSTOP) {f['stop']:g} s, running {f['run']:g} s, in a loop for "
            f"{f['seconds']:g} s; {f['cities']} cities fetched /live (fresh 1 s) and the page every 0.5 s: "
            f"{f['errors']} errors in {f['requests']} requests (statuses {f['statuses']}); X-Cache: {caches}; "
            f"slowest request {f['slowest'] * 1000:.0f} ms")


def _origin_dies_text(f: dict) -> str:
    return (f"The origin killed (SIGKILL) after every city fetched every object: {f['served']} of "
            f"{f['objects']} cached objects still served ({f['share']:.0%}) in {f['cities']} cities; objects "
            f"no edge had cached: {f['uncached_served']} of {f['uncached']} served "
            f"(statuses {f['uncached_statuses']})")


def _control_dies_text(f: dict) -> str:
    return (f"The control plane killed (SIGKILL); {f['cities']} cities looked the name up and fetched every "
            f"object every 0.5 s for {f['seconds']:g} s: {f['lookups_failed']} of {f['lookups']} lookups and "
            f"{f['failed']} of {f['requests']} requests failed")


FAILURES = {"edge-dies": _failure_text, "origin-stalls": _stalls_text, "origin-dies": _origin_dies_text,
            "control-dies": _control_dies_text}
FAILURE_TITLES = {"edge-dies": "an edge location dies", "origin-stalls": "the origin stalls like a starved VM",
                  "origin-dies": "the origin dies", "control-dies": "the control plane dies"}


def _emulator_md(e: dict) -> str:
    probe = e.get("probe")
    lines = ["## emulator: the WAN emulator's own error\n",
             f"Forwarder: {' '.join(e['modes']) or 'default timers'}. Packets left against their due time: "
             f"{emulator_text(e['lateness'])}.\n"]
    if probe:
        head, *rows = probe_text(probe).splitlines()
        lines.append(head + "\n\n" + "\n".join(f"- {r}" for r in rows) + "\n")
    return "\n".join(lines)


def _write(out: Path, w, results: dict[str, list[dict]], scale: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"scale": scale, "scenarios": results}, indent=1) + "\n")
    md = [f"# owncdn world: {len(w.visitors)} cities, {len(w.locations)} edge locations (scale {scale:g})\n"]
    for scenario, rows in results.items():
        if scenario == "emulator":
            md.append(_emulator_md(rows[0]))
        elif scenario in FAILURES:
            md.append(f"## {scenario}: {FAILURE_TITLES[scenario]}\n\n{FAILURES[scenario](rows[0])}.\n")
        else:
            md.append(f"## {scenario}: {TITLES[scenario]}\n\n{table(rows, markdown=True)}")
            if client_tls_text(rows):
                md.append(client_tls_text(rows) + "\n")
    (out / "results.md").write_text("\n".join(md))
    names = [c.name for c in w.visitors]
    cdn = results.get("pull-warm", [])
    floors = [r["floor"] * 1000 for r in cdn] if cdn else None
    for metric, title in (("ttfb", "Time to first byte"), ("page", "Full page (DNS, page and assets)")):
        series = {s: [r[metric] * 1000 for r in rows] for s, rows in results.items() if s in TITLES}
        svg = bar_chart(f"{title}, ms (dashed: floor to the nearest edge)" if metric == "ttfb" else f"{title}, ms",
                        names, series, floors if metric == "ttfb" else None)
        (out / f"{metric}.svg").write_text(svg)
