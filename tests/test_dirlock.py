"""owncdn/dirlock.py: one process at a time per directory, shared within a process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from owncdn.dirlock import lock, unlock

HOLD = """
import sys
from owncdn.dirlock import lock
try:
    lock(sys.argv[1], RuntimeError, "one at a time")
except RuntimeError as exc:
    print("refused:", exc, flush=True)
    sys.exit(3)
print("held", flush=True)
sys.stdin.read()  # until the test closes this process's stdin
"""


def other(directory) -> subprocess.Popen:
    """Another process that tries to take the directory and says what happened."""
    return subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def refused(directory) -> str:
    proc = other(directory)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    return out


def test_another_process_is_refused_while_this_one_holds_it_and_takes_it_after(tmp_path):
    key = lock(tmp_path, RuntimeError, "one at a time")
    assert lock(tmp_path / ".", RuntimeError, "one at a time") == key  # this process again: shared (Rule 2)
    message = f"refused: {tmp_path} is in use by another process (pid {os.getpid()}); one at a time\n"
    assert refused(tmp_path) == message
    unlock(key)  # one user left: still held
    assert refused(tmp_path) == message
    unlock(key)  # the last: let go
    holder = other(tmp_path)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(RuntimeError, match=rf"in use by another process \(pid {holder.pid}\); mine"):
        lock(tmp_path, RuntimeError, "mine")
    holder.kill()  # a holder that dies lets go (Rule 2)
    holder.wait(30)
    unlock(lock(tmp_path, RuntimeError, "mine"))
