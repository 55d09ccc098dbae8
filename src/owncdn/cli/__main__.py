"""`python -m owncdn.cli`: the same as the `owncdn` command."""

from owncdn.cli.main import app

app(prog_name="owncdn")
