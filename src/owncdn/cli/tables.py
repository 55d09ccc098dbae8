"""The tables commands print (`owncdn status`, `releases`, `certs`, `stats`, `probe`, ...).

Rules:
1. ``new(title)`` is a Rich table with a rule under its header and no borders between
   its columns: `owncdn status`'s 9 take 87 characters, where boxed ones took 99 and,
   on 80 columns, were cut to ``edge-…`` and ``127.0…``.
2. ``show(table)`` prints it as wide as its cells need: a cell is never cut short, so a
   node's name or an address can be copied, and `owncdn status | grep edge-fra-1` finds
   it (in a pipe, Rich alone lays out 80 columns). A terminal narrower than the table
   wraps its lines. A column with a ``max_width`` (a release's comment) folds within it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # Rich is imported when a table is made, not when a command starts
if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["new", "show"]


def new(title: str | None = None) -> Table:
    """Rule 1."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                 collapse_padding=True)


def show(*tables: Table) -> None:
    """Rule 2, for each of ``tables`` in turn."""
    from rich.console import Console

    console = Console()
    unbounded = console.options.update(max_width=1 << 16)
    for table in tables:
        width = console.measure(table, options=unbounded).maximum
        (console if width <= console.width else Console(width=width)).print(table)
