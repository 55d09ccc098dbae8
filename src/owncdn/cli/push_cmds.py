"""Pushed content: `push`, `releases` (and `rollback --service --release` in fleet_cmds).

    owncdn push ./public --service blog [--env staging]
    owncdn releases --service blog
    owncdn rollback --service blog --release 3

They talk to the control plane like the other fleet commands (`--control`,
`--token`, or the files `owncdn up` / `owncdn control` leave in the state dir).
"""

from __future__ import annotations

from pathlib import Path

import typer

from owncdn.cli.fleet_cmds import ControlOpt, EnvOpt, StateOpt, TokenOpt, _call, _fail, client

__all__ = ["activate", "register"]


def _size(text: str, flag: str) -> int:
    from owncdn.core.config.units import parse_byte_size

    try:
        return parse_byte_size(text)
    except ValueError as exc:
        _fail(f"{flag} {text!r}: {exc}")


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def push(
    directory: Path = typer.Argument(..., help="The directory to push, e.g. ./public"),
    service: str = typer.Option(..., "--service", "-s", help="The push service (mode: push in cdn.yaml)."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
    max_files: int = typer.Option(100_000, min=1, help="Refuse a directory with more files than this."),
    max_file_size: str = typer.Option("2GiB", help="Refuse a file larger than this (e.g. 500MB, 2GiB)."),
    max_total_size: str = typer.Option("20GiB", help="Refuse a directory larger than this in all."),
    parallel: int = typer.Option(8, min=1, max=64, help="Uploads at the same time."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    hash_cache: bool = typer.Option(True, "--hash-cache/--no-hash-cache",
                                    help="Reuse the hashes of files unchanged since the last push "
                                         "(kept in ~/.cache/owncdn/hashes)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Push DIRECTORY as a new release of SERVICE: only files the CDN lacks are uploaded,
    then every edge fetches them and switches at once. A failed push changes nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from owncdn.client import ApiError
    from owncdn.client.hashcache import HashCache
    from owncdn.client.push import push_site
    from owncdn.client.sitedir import Limits, SiteError

    limits = Limits(max_files, _size(max_file_size, "--max-file-size"), _size(max_total_size, "--max-total-size"))
    api = client(control_url, token, state_dir)
    console = Console(stderr=True)
    bar = Progress(TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=console, disable=quiet or not console.is_terminal, transient=True)
    task = bar.add_task("upload", total=0)

    def on_plan(site, missing) -> None:
        sizes = site.manifest.blobs
        bar.update(task, total=sum(sizes[h] for h in missing))

    try:
        with bar:
            result = push_site(api, directory, service=service, env=env, limits=limits, parallel=parallel,
                               progress=lambda n: bar.advance(task, n), on_plan=on_plan,
                               cache=HashCache.for_root(directory) if hash_cache else None)
    except SiteError as exc:
        _fail(str(exc))
    except ApiError as exc:
        lines = [str(exc)] + [f"  {p}" for p in (exc.problems or [])[:10]]
        _fail("\n".join(lines) + "\nthe previous release is still current")
    release = result.release
    if as_json:
        import json

        typer.echo(json.dumps({"env": env, "service": service, "release": release["number"], "files": result.files,
                               "bytes": result.bytes_total, "blobs_uploaded": result.blobs_uploaded,
                               "bytes_uploaded": result.bytes_uploaded, "manifest_bytes": result.manifest_bytes,
                               "seconds": round(result.seconds, 4)}))
        return
    typer.echo(f"{env}: {service} release {release['number']} ({result.files} files, {_human(result.bytes_total)}); "
               f"uploaded {result.blobs_uploaded} blob(s), {_human(result.bytes_uploaded)} "
               f"+ manifest {_human(result.manifest_bytes)} in {result.seconds:.2f}s")


def releases(
    service: str = typer.Option(..., "--service", "-s", help="The push service."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """The releases of SERVICE, newest first: which is current and which edges serve it."""
    from rich.console import Console
    from rich.table import Table

    rows = _call(client(control_url, token, state_dir).releases, env, service)
    if not rows:
        typer.echo(f"{env}: {service} has no releases yet; `owncdn push DIR --service {service}` makes one")
        return
    table = Table(title=f"{env}: releases of {service}")
    for col in ("release", "current", "files", "size", "created", "by", "served by"):
        table.add_column(col)
    for r in rows:
        created = (r.get("created") or "")[:19].replace("T", " ")
        nodes = ", ".join(n["name"] for n in r["nodes"]) or "-"
        table.add_row(str(r["number"]), "*" if r["current"] else "", str(r["files"]), _human(r["bytes"]),
                      created, r.get("author") or "", nodes)
    Console().print(table)


def activate(service: str, number: int, env: str, control_url: str | None, token: str | None,
             state_dir: Path) -> None:
    """`owncdn rollback --service S --release N`: make release N current again."""
    done = _call(client(control_url, token, state_dir).activate_release, env, service, number)
    typer.echo(f"{env}: {service} serves release {done['number']} again")


def register(app: typer.Typer) -> None:
    app.command()(push)
    app.command()(releases)
