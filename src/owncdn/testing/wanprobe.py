"""Probe the WAN emulator's own cost with a TCP echo: the same exchanges with and without it.

    python -m owncdn.testing.wanprobe serve 10.2.0.10        # prints "ready PORT"
    python -m owncdn.testing.wanprobe client 10.2.0.10 PORT 200   # prints JSON samples

Rules:

1. The server echoes whatever it reads, a thread per connection, ``TCP_NODELAY``
   (as the edge sets it); it binds port 0 and prints the port it got.
2. The client times three exchanges, ``samples`` times each, with a short pause
   between samples: ``pingpong`` (1 byte there and back on an open connection: one
   round trip), ``connect`` (the TCP handshake: one round trip) and ``request``
   (a new connection, then 64 bytes there and back, timed from ``connect()`` as
   ``owncdn.testing.visit`` times a TTFB: two round trips). Sockets are made before
   the clock starts, so only the handshake and the exchange are timed.
3. ``measure`` runs a server and a client with the given command prefixes (e.g.
   ``Wan.exec_args``): client and server on one host's loopback give the hosts' own
   cost; across the emulator, the same exchange minus that, minus the modelled
   delay, over the crossings, is what one crossing of the emulator adds
   (``core.world.emulator.per_hop``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

EXCHANGES = {"pingpong": 1, "connect": 1, "request": 2}   # round trips each
PAUSE_S = 0.002


def serve(address: str) -> None:
    """Rule 1."""
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(128)
    print(f"ready {listener.getsockname()[1]}", flush=True)

    def echo(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def _socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def client(address: str, port: int, samples: int) -> dict[str, list[float]]:
    """Rule 2: seconds per sample of each exchange."""
    out: dict[str, list[float]] = {name: [] for name in EXCHANGES}
    clock = time.perf_counter
    with _socket() as sock:
        sock.connect((address, port))
        for _ in range(samples):
            t = clock()
            sock.sendall(b"x")
            sock.recv(16)
            out["pingpong"].append(clock() - t)
            time.sleep(PAUSE_S)
    for _ in range(samples):
        with _socket() as sock:
            t = clock()
            sock.connect((address, port))
            out["connect"].append(clock() - t)
            sock.sendall(b"G" * 64)
            got = 0
            while got < 64:
                got += len(sock.recv(128))
            out["request"].append(clock() - t)
        time.sleep(PAUSE_S)
    return out


def measure(server_prefix: list[str], client_prefix: list[str], address: str,
            samples: int = 100) -> dict[str, list[float]]:
    """Rule 3: an echo server on ``address`` (run with ``server_prefix``), a client
    (``client_prefix``) timing every exchange against it."""
    server = subprocess.Popen(server_prefix + [sys.executable, "-m", __name__, "serve", address],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("the echo server of the emulator probe did not start")
        done = subprocess.run(client_prefix + [sys.executable, "-m", __name__, "client", address, line[1],
                                               str(samples)], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"the emulator probe's client failed: {done.stderr.strip()[-300:]}")
        return json.loads(done.stdout)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        print(json.dumps(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
