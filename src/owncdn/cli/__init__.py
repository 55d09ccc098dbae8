"""The ``owncdn`` command (Typer + Rich).

``main`` holds the Typer ``app`` and the global options (``--version``);
each group of commands lives in its own module and registers itself on the
app (``config_cmds``: ``validate`` and ``schema``). Commands print one
readable line per failure and exit non-zero; they never show a traceback
for a user's mistake.
"""
