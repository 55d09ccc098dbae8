"""`owncdn certs`: the certificates the control plane holds, and forced renewals.

    owncdn certs                      # table: id, names, status, issuer, expiry, edges
    owncdn certs renew blog@production   # or a hostname: renew the certificate serving it
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from owncdn.cli.fleet_cmds import ControlOpt, StateOpt, TokenOpt, _call, _fail, client

__all__ = ["certs_app"]

certs_app = typer.Typer(help="Certificates: list them, renew one now.", invoke_without_command=True,
                        no_args_is_help=False)


@certs_app.callback()
def certs(ctx: typer.Context, control_url: str = ControlOpt, token: str = TokenOpt,
          state_dir: Path = StateOpt) -> None:
    """List every certificate: names, status, issuer, expiry and how many edges have it."""
    if ctx.invoked_subcommand is not None:
        return
    from owncdn.cli import tables

    rows = _call(client(control_url, token, state_dir).certs)
    table = tables.new(f"{len(rows)} certificate(s)")
    for col in ("id", "names", "status", "issuer", "expires", "edges", "last error"):
        table.add_column(col)
    for c in rows:
        current = sum(1 for e in c["edges"] if e["current"])
        table.add_row(c["id"], ", ".join(c["names"]), c["status"], _short_issuer(c["issuer"]),
                      (c["not_after"] or "-")[:16].replace("T", " "), f"{current}/{len(c['edges'])}",
                      (c["last_error"] or "")[:80])
    tables.show(table)


@certs_app.command()
def renew(name: str = typer.Argument(..., help="A certificate id (`<service>@<env>`) or a hostname it covers."),
          wait: float = typer.Option(120.0, help="Seconds to wait for the new certificate (0: do not wait)."),
          control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt) -> None:
    """Renew a certificate now, and wait until the new one is issued."""
    api = client(control_url, token, state_dir)
    rows = _call(api.certs)
    found = [c for c in rows if c["id"] == name] or [c for c in rows if name.lower() in c["names"]]
    if not found:
        _fail(f"no certificate is called or covers {name!r}; `owncdn certs` lists them")
    before = found[0]
    _call(api.renew_cert, before["id"])
    typer.echo(f"renewal of {before['id']} ({', '.join(before['names'])}) requested")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _call(api.cert, before["id"])
        if now["fingerprint"] != before["fingerprint"] and now["status"] == "valid":
            typer.echo(f"renewed: {now['id']} valid until {now['not_after']}")
            return
        if now["failures"] > before["failures"]:
            _fail(f"renewal of {now['id']} failed: {now['last_error']}")
    if wait > 0:
        _fail(f"{before['id']} was not renewed within {wait:g}s; `owncdn certs` shows its state")


def _short_issuer(issuer: str) -> str:
    for part in issuer.split(","):
        if part.startswith("CN="):
            return part[3:]
    return issuer
