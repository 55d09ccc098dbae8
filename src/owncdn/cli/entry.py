"""The `owncdn` command's entry point (``[project.scripts]``, and ``python -m owncdn.cli``).

Rules:
1. `owncdn push ...` goes to ``push_run.lean_main`` first, which runs a plain push
   without importing the Typer application (a push of one changed file takes less
   time than that import).
2. Everything else, and every push the lean parser leaves alone (``--help``, an
   unknown option, a parse error), runs the Typer application of ``cli/main.py``.
3. A push that ran there ends the process at once (``os._exit`` after flushing its
   output): the interpreter's orderly shutdown, tearing down every module and object
   of a push, took about 4 ms more, and the push has nothing left to do (its
   connections are closed and its threads joined).
4. Output read by a command that stops early (``owncdn push ... | head -1``) ends the
   push quietly with code 1, as Click ends the other commands: no traceback. What was
   pushed stays pushed.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(prog_name: str = "owncdn") -> int | None:
    argv = sys.argv[1:]
    if argv[:1] == ["push"]:
        from owncdn.cli.push_run import lean_main

        try:
            code = lean_main(argv[1:])
        except BrokenPipeError:  # Rule 4
            _stdout_to_devnull()
            code = 1
        if code is not None:
            _exit_now(code)
    from owncdn.cli.main import app

    return app(prog_name=prog_name)


def _stdout_to_devnull() -> None:
    """Rule 4: what is still buffered for the closed pipe goes nowhere."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _exit_now(code: int) -> None:
    """Rule 3."""
    import os

    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe: as Python says at its exit
        code = code or 120
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
