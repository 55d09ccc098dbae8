"""The ``owncdn`` Typer application and its global options.

Other modules add commands with ``@app.command()`` or a ``register(app)``
function, imported at the bottom of this file.
"""

from __future__ import annotations

import typer

__all__ = ["app", "version"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=True,
    help="owncdn: a CDN you run yourself. Keep it as code in cdn.yaml: validate, then run it.",
)


def version() -> str:
    """The installed owncdn version (``importlib.metadata``, about 40 ms, imported only then)."""
    from importlib import metadata

    try:
        return metadata.version("owncdn")
    except metadata.PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"owncdn {version()}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """owncdn: a CDN you run yourself."""


# Command groups. Add new ones here (e.g. `edge`, `up`), one module each.
from owncdn.cli import config_cmds  # noqa: E402

config_cmds.register(app)

from owncdn.cli import edge_cmds  # noqa: E402

edge_cmds.register(app)

from owncdn.cli import fleet_cmds, up_cmd  # noqa: E402

fleet_cmds.register(app)
app.command()(up_cmd.up)

from owncdn.cli import dns_cmd  # noqa: E402

app.command()(dns_cmd.dns)

from owncdn.cli import route_cmd  # noqa: E402

app.add_typer(route_cmd.route_app, name="route")

from owncdn.cli import test_cmds  # noqa: E402

test_cmds.register(app)

from owncdn.cli import push_cmds  # noqa: E402

push_cmds.register(app)

from owncdn.cli.certs_cmd import certs_app  # noqa: E402

app.add_typer(certs_app, name="certs")

from owncdn.cli import watch_cmds  # noqa: E402

watch_cmds.register(app)  # explain, probe

from owncdn.cli import logs_cmds  # noqa: E402

logs_cmds.register(app)  # stats, logs tail, logs query

from owncdn.cli import world_cmd  # noqa: E402

app.command()(world_cmd.world)  # a simulated world with real latencies (docs/world.md)

from owncdn.cli import check_cmd  # noqa: E402

app.command()(check_cmd.check)  # a tracer bullet through a deployment (docs/check.md)
