"""The WAN emulator: namespaces joined through TUN devices, each packet delayed (needs root)."""

import subprocess
import sys

import pytest

from owncdn.core.world.emulator import summary
from owncdn.testing.wan import PREFIX, Wan, WanHost, remove_stale

LISTEN = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.2.0.10", 7000)); s.listen(); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(c.recv(10)); c.close()
"""
CONNECT = """
import socket, time
t = time.perf_counter(); s = socket.create_connection(("10.2.0.10", 7000), timeout=10)
connect = time.perf_counter() - t
t = time.perf_counter(); s.sendall(b"x"); assert s.recv(10) == b"x"
print(connect, time.perf_counter() - t)
"""


def _namespaces() -> set[str]:
    return {line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                         text=True).stdout.splitlines() if line.split()}


def test_round_trip_between_namespaces_is_twice_the_one_way_delay():
    hosts = [WanHost("a", "10.1.0.10", "a"), WanHost("b", "10.2.0.10", "b")]
    wan = Wan(hosts, lambda x, y: 0.15)
    with wan:
        assert {wan.namespace("a"), wan.namespace("b")} <= _namespaces()
        listener = subprocess.Popen(wan.exec_args("b") + [sys.executable, "-c", LISTEN], stdout=subprocess.PIPE)
        try:
            assert listener.stdout.readline().strip() == b"ready"
            out = subprocess.run(wan.exec_args("a") + [sys.executable, "-c", CONNECT], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
        finally:
            listener.kill()
            listener.wait()
        connect, echo = map(float, out.split())
        # A packet can never arrive before its delay; the upper bound is loose (a busy machine).
        assert 0.30 <= connect < 0.30 + 1.0
        assert 0.30 <= echo < 0.30 + 1.0
        # Precise timers (rule 5): microsecond waits, no timer slack, no idle halts, real-time priority.
        assert wan.modes == ["timerslack=1ns", "cpu_dma_latency=0", "SCHED_FIFO/10"]
    assert not {wan.namespace("a"), wan.namespace("b")} & _namespaces()
    # Rule 6: every forwarded packet counted in the lateness histogram, read back on close.
    assert summary(wan.lateness)["packets"] >= 6   # handshake, request, reply, teardown


def test_namespaces_of_a_dead_world_are_removed():
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"{PREFIX}{dead.pid}-x"
    subprocess.run(["ip", "netns", "add", name], check=True)
    assert name in remove_stale()
    assert name not in _namespaces()


def test_namespaces_are_removed_after_a_failed_start():
    wan = Wan([WanHost("a", "10.1.0.10", "a"), WanHost("b", "not-an-address", "b")], lambda x, y: 0.01)
    with pytest.raises(RuntimeError):
        wan.start()
    assert not any(n.startswith(wan.tag + "-") for n in _namespaces())
