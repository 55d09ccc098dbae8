"""`owncdn edge --workers N`: N edge processes on one listen address.

Each worker is an ordinary `owncdn edge` process started with `--reuse-port`, so the
kernel spreads connections over them (SO_REUSEPORT). Worker i (from 0) keeps the edge
id with `-w<i>` appended, its own state directory `<state>/w<i>` and, when an admin
address is given, the admin port plus i, so each worker's /stats and /metrics stay
readable. With a control plane every worker is a node of its own: versions and purges
reach all of them. Workers share the disk tier's files; each keeps its own index and
stays within size / N. The parent forwards SIGINT/SIGTERM and exits when they have.
Workers share one TLS session-ticket key file, `<state>/tls-tickets` (`--tls-tickets`,
edge/tickets.py), so a returning visitor resumes its TLS session whichever worker
accepts the connection.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def worker_args(argv: list[str], i: int, edge_id: str, state_dir: Path, admin: str | None,
                count: int = 1) -> list[str]:
    """The command line of worker `i`: the parent's options, adjusted (pure)."""
    out: list[str] = []
    skip = False
    replaced = {"--workers", "--id", "--state-dir", "--admin", "--disk-share", "--tls-tickets"}
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name == "--reuse-port":
            continue
        if name in replaced:
            skip = "=" not in arg
            continue
        out.append(arg)
    out += ["--workers", "1", "--reuse-port", "--disk-share", str(count), "--id", f"{edge_id}-w{i}",
            "--state-dir", str(state_dir / f"w{i}"), "--tls-tickets", str(state_dir / "tls-tickets")]
    if admin:
        host, _, port = admin.rpartition(":")
        out += ["--admin", f"{host}:{int(port) + i}"]
    return out


def run_workers(count: int, argv: list[str], edge_id: str, state_dir: Path, admin: str | None) -> int:
    children = [
        subprocess.Popen([sys.executable, "-m", "owncdn.cli", "edge",
                          *worker_args(argv, i, edge_id, state_dir, admin, count)])
        for i in range(count)
    ]

    def forward(signum, _frame) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)
