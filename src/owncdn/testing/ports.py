"""Free loopback ports for tests, and waiting for a process's port to open."""

from __future__ import annotations

import asyncio
import socket
import subprocess

from owncdn.testing.fleet import free_port

__all__ = ["free_port", "free_ports_in_a_row", "wait_for_port"]


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive free ports (worker i takes the admin port + i)."""
    for _ in range(100):
        first, socks = free_port(), []
        try:
            for i in range(count):
                socks.append(socket.socket())
                socks[-1].bind(("127.0.0.1", first + i))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


async def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Until 127.0.0.1:`port` accepts a connection; fails if `proc` exits first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"port {port} never opened")
