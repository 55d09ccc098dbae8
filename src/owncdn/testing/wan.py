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
5. The delay is added exactly, no more: the forwarder waits in ``select`` (microsecond
   timeouts; ``epoll`` and libuv round a wait up to the next millisecond, which made a
   1 ms hop up to 2 ms), with 1 ns timer slack, under ``SCHED_FIFO`` (when allowed) so
   the emulated hosts' own CPU load cannot hold a packet back, waking ``SPIN_S`` early
   and spinning the rest. A packet's due time is stamped when it is read, so a packet
   never leaves early. While it runs the forwarder holds a PM QoS request of 0 us CPU
   wake-up latency (``/dev/cpu_dma_latency``, as ``cyclictest`` does): idle CPUs poll
   instead of halting, for every process of the machine, until the forwarder exits.
   What remains is the cost of the hop itself (reading the TUN, writing the other one,
   the kernel's work on both sides), measured by ``bench/wan.py`` and by every world
   (``owncdn.testing.wanprobe``), not hidden by shortening the delay.
6. The forwarder counts how late each packet left against its due time (a histogram
   in microseconds); ``close()`` reads it into ``lateness`` (``core.world.emulator``
   summarises it), so every run reports the emulator's own timer error, and its own
   CPU time (user + system) once it was ready into ``cpu_s``.

Measured (``bench/wan.py --samples 400``, 1 ms one way, medians, 2-vCPU VM whose idle
driver halts at once, ``guest_halt_poll_ns`` 0):

- kept: the idle-latency request. Each crossing had been paying for waking a halted
  CPU (the forwarder's on a host's send, the receiver's on the forwarder's write):
  pingpong 2.23-2.34 -> 2.04 ms, request 4.30-4.54 -> 4.12-4.14 ms; residual per
  crossing pingpong 110-167 -> 16 us, request 22-81 -> about 0 us, connect within the
  loopback baseline's own spread; lateness p99 8-11 us instead of 47-143 us.
- kept: a routing table per source descriptor (address bytes -> (TUN, delay)) and
  local names in the loop; it drains every ready TUN per wake-up (as before). This
  alone did not move the medians: Python's work is about 10 us of CPU per packet.
- rejected: polling the TUNs (``select`` with no timeout) for 200 us after each packet,
  capped at a quarter of the time. Without the latency request it saved about 30 us
  per crossing at 4x the forwarder's CPU (230 us per packet); with it, nothing.
- rejected: spinning 20 us instead of 50 us before a due time: half the spin CPU, but
  lateness p99 15 us instead of 8-10 us and the request's median about 15 us worse.
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import json
import os
import re
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PREFIX = "ocw"
NETWORK_BITS = 8   # every host gets 10.x.y.z/8: the whole plan is on-link through its TUN
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
LATE_BUCKETS = 10_000   # lateness histogram: 1 us buckets up to 10 ms, then one for the rest


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
    """The emulated network of one world (rules 1-6)."""

    def __init__(self, hosts: list[WanHost], delay: Callable[[WanHost, WanHost], float],
                 precise: bool = True) -> None:
        self.hosts = hosts
        self.delay = delay
        self.precise = precise
        self.tag = f"{PREFIX}{os.getpid()}"
        self.proc: subprocess.Popen | None = None
        self.modes: list[str] = []            # the forwarder's timer settings (rule 5)
        self.lateness: list[int] | None = None   # rule 6, after close()
        self.cpu_s: float | None = None          # the forwarder's CPU time (user + system) once ready, after close()
        self._stats: Path | None = None
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
        fd, stats = tempfile.mkstemp(prefix=f"{self.tag}-", suffix=".json")
        os.close(fd)
        self._stats = Path(stats)
        spec = {
            "tag": self.tag,
            "hosts": [{"name": h.name, "address": h.address, "netns": self.namespace(h.name)} for h in self.hosts],
            "delays": [[self.delay(a, b) for b in self.hosts] for a in self.hosts],
            "precise": self.precise,
            "stats": stats,
        }
        self.proc = subprocess.Popen([sys.executable, "-m", "owncdn.testing.wan"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True)
        self.proc.stdin.write(json.dumps(spec).encode())
        self.proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = self.proc.stdout.readline().split() if sel.select(timeout) else []
        if not line or line[0] != b"ready":
            self.close()
            raise RuntimeError("the WAN forwarder did not start")
        self.modes = [m.decode() for m in line[1:]]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._stats is not None:
            try:
                stats = json.loads(self._stats.read_text() or "{}")
                self.lateness, self.cpu_s = stats.get("late_us"), stats.get("cpu_s")
            except (OSError, ValueError):
                pass
            self._stats.unlink(missing_ok=True)
            self._stats = None
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

PR_SET_TIMERSLACK = 29
RT_PRIORITY = 10       # SCHED_FIFO priority of the forwarder (rule 5); the emulated hosts stay normal
SPIN_S = 0.00005       # wake this early and spin the rest (rule 5): a wake-up takes 10-50 us here
IDLE_S = 0.5


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


_held: list[int] = []   # the PM QoS request's descriptor (rule 5), closed by the exit


def _precise_timers() -> list[str]:
    """Rule 5: 1 ns timer slack, a zero CPU wake-up latency request, and real-time scheduling
    when allowed. Returns what was set."""
    got = []
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0:
            got.append("timerslack=1ns")
    except (OSError, AttributeError):
        pass
    try:   # no idle CPU halts while the request is held (the descriptor stays open until exit)
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(fd, struct.pack("i", 0))
        _held.append(fd)
        got.append("cpu_dma_latency=0")
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        got.append(f"SCHED_FIFO/{RT_PRIORITY}")
    except (OSError, AttributeError):
        pass
    return got


class _Lateness:
    """How late packets leave against their due time: a histogram in microseconds (rule 6)."""

    def __init__(self, buckets: int = LATE_BUCKETS) -> None:
        self.counts = [0] * (buckets + 1)   # the last bucket holds everything later
        self.top = buckets

    def add(self, seconds: float) -> None:
        us = int(seconds * 1e6)
        self.counts[us if us < self.top else self.top] += 1


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
    # Rule 2, precomputed: per source descriptor, destination address -> (its TUN, the pair's delay).
    routes = {fds[a]: {socket.inet_aton(h["address"]): (fds[b], delays[a][b]) for b, h in enumerate(hosts)}
              for a in range(len(hosts))}
    heap: list[tuple[float, int, int, bytes]] = []
    seq = itertools.count()
    late = _Lateness()
    counts, top = late.counts, late.top
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    modes = _precise_timers() if spec.get("precise", True) else []
    started = os.times()
    sys.stdout.write(f"ready {' '.join(modes)}\n")
    sys.stdout.flush()
    spin = SPIN_S
    clock = time.monotonic
    wait = select.select
    read, write = os.read, os.write
    push, pop = heapq.heappush, heapq.heappop
    while not stop:
        now = clock()
        if heap and heap[0][0] - now < spin:
            while heap[0][0] > now:   # rule 5: the last few microseconds spun
                now = clock()
            while heap and heap[0][0] <= now:
                due, _, dst, packet = pop(heap)
                us = int((clock() - due) * 1e6)   # rule 6: _Lateness.add, inlined
                counts[us if us < top else top] += 1
                try:
                    write(dst, packet)
                except OSError:
                    pass   # a full queue or a host going down: the packet is lost, as on a WAN
                now = clock()
        timeout = max(0.0, heap[0][0] - now - spin) if heap else IDLE_S
        try:
            ready = wait(fds, (), (), timeout)[0]
        except InterruptedError:
            continue
        for fd in ready:
            route = routes[fd]
            for _ in range(64):
                try:
                    packet = read(fd, 65535)
                except (BlockingIOError, InterruptedError):
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue
                to = route.get(packet[16:20])
                if to is None:
                    continue
                push(heap, (clock() + to[1], next(seq), to[0], packet))
    if spec.get("stats"):
        cpu = os.times()
        cpu_s = cpu.user + cpu.system - started.user - started.system
        Path(spec["stats"]).write_text(json.dumps({"modes": modes, "late_us": late.counts,
                                                   "cpu_s": round(cpu_s, 3)}))


if __name__ == "__main__":
    _forward(json.loads(sys.stdin.read()))
