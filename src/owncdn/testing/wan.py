"""A user-space WAN emulator: network namespaces joined by TUN devices and a forwarder
that delays every packet by the one-way latency between the two hosts' cities.

    wan = Wan([WanHost("fra-edge", "10.6.0.20", "fra"), ...], delay=lambda a, b: 0.05)
    wan.start()                          # namespaces up, forwarder running
    subprocess.Popen(wan.exec_args("fra-edge") + ["python", "-m", ...])
    wan.close()                          # forwarder stopped, namespaces removed

This kernel has no ``tc netem``, so the delay lives in a process: the forwarder
(``python -m owncdn.testing.wan``, spec on stdin) opens one TUN device per host,
moves it into the host's namespace, and routes ``10.0.0.0/8`` through it; every
IPv4 packet a host sends arrives on the forwarder's file descriptor for that host.

Rules:

1. One network namespace per host, named ``ocw<pid>-<host>`` (pid: the process that
   built the world); the lab host (``namespace=False``) stays in the root namespace
   so the building process can reach every host directly.
2. A packet read from host A's TUN goes to the host owning its destination address,
   written to that host's TUN after ``delay(A, B)`` seconds. Packets to an unknown
   address and non-IPv4 packets are dropped.
3. Packets are released from one timer heap ordered by (due time, arrival number):
   the delay of a pair is constant, so packets of one pair leave in the order they
   came, and the link has no bandwidth limit.
4. Clean-up: ``close()`` kills what runs in the namespaces and removes them; the
   TUN devices vanish with the forwarder. ``start()`` first removes namespaces left
   by a world whose process no longer exists (a crash), so names never collide.
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

PREFIX = "ocw"
NETWORK_BITS = 8   # every host gets 10.x.y.z/8: the whole plan is on-link through its TUN
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


@dataclass(frozen=True)
class WanHost:
    name: str
    address: str
    city: str
    namespace: bool = True


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_namespace(name: str) -> None:
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", name, check=False)


def remove_stale() -> list[str]:
    """Remove namespaces of worlds whose building process is gone (rule 4)."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{PREFIX}(\d+)-", name)
        if m and not _alive(int(m.group(1))):
            _remove_namespace(name)
            removed.append(name)
    return removed


class Wan:
    """The emulated network of one world (rules 1-4)."""

    def __init__(self, hosts: list[WanHost], delay: Callable[[WanHost, WanHost], float]) -> None:
        self.hosts = hosts
        self.delay = delay
        self.tag = f"{PREFIX}{os.getpid()}"
        self.proc: subprocess.Popen | None = None
        self._by_name = {h.name: h for h in hosts}

    def __repr__(self) -> str:
        state = "running" if self.proc and self.proc.poll() is None else "stopped"
        return f"<Wan {self.tag} hosts={len(self.hosts)} {state}>"

    def namespace(self, host: str) -> str | None:
        h = self._by_name[host]
        return f"{self.tag}-{h.name}" if h.namespace else None

    def exec_args(self, host: str) -> list[str]:
        """Command prefix that runs a program on ``host`` (inside its namespace)."""
        ns = self.namespace(host)
        return ["ip", "netns", "exec", ns] if ns else []

    def start(self, timeout: float = 20.0) -> None:
        remove_stale()
        for h in self.hosts:
            ns = self.namespace(h.name)
            if ns:
                _remove_namespace(ns)
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
        spec = {
            "tag": self.tag,
            "hosts": [{"name": h.name, "address": h.address, "netns": self.namespace(h.name)} for h in self.hosts],
            "delays": [[self.delay(a, b) for b in self.hosts] for a in self.hosts],
        }
        self.proc = subprocess.Popen([sys.executable, "-m", "owncdn.testing.wan"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True)
        self.proc.stdin.write(json.dumps(spec).encode())
        self.proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout) or self.proc.stdout.readline().strip() != b"ready":
            self.close()
            raise RuntimeError("the WAN forwarder did not start")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for h in self.hosts:
            ns = self.namespace(h.name)
            if ns:
                _remove_namespace(ns)

    def __enter__(self) -> Wan:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the forwarder process ---------------------------------------------------------


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _forward(spec: dict) -> None:
    hosts = spec["hosts"]
    delays = spec["delays"]
    fds: list[int] = []
    for i, h in enumerate(hosts):
        dev = f"{spec['tag']}t{i}"
        fds.append(_open_tun(dev))
        where = ["-n", h["netns"]] if h["netns"] else []
        if h["netns"]:
            _ip("link", "set", dev, "netns", h["netns"])
        _ip(*where, "addr", "add", f"{h['address']}/{NETWORK_BITS}", "dev", dev)
        _ip(*where, "link", "set", dev, "up")
    owner = {socket.inet_aton(h["address"]): i for i, h in enumerate(hosts)}
    sel = selectors.DefaultSelector()
    for i, fd in enumerate(fds):
        sel.register(fd, selectors.EVENT_READ, i)
    heap: list[tuple[float, int, int, bytes]] = []
    seq = itertools.count()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not stop:
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, dst, packet = heapq.heappop(heap)
            try:
                os.write(fds[dst], packet)
            except OSError:
                pass   # a full queue or a host going down: the packet is lost, as on a WAN
        timeout = max(0.0, heap[0][0] - now) if heap else 0.5
        for key, _ in sel.select(timeout):
            src = key.data
            for _ in range(64):
                try:
                    packet = os.read(fds[src], 65535)
                except (BlockingIOError, InterruptedError):
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue
                dst = owner.get(packet[16:20])
                if dst is None:
                    continue
                heapq.heappush(heap, (time.monotonic() + delays[src][dst], next(seq), dst, packet))


if __name__ == "__main__":
    _forward(json.loads(sys.stdin.read()))
