"""TLS 1.3 session resumption at the edge: tickets, their key shared by listeners and
workers (edge/tickets.py, edge/tls.py Rule 8), rotation, the key file."""

import asyncio
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

from owncdn.core.tls import tickets as schedule
from owncdn.edge.tickets import TicketKeys
from owncdn.testing.certs import TestCA
from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin
from owncdn.testing.ports import free_port, free_ports_in_a_row, wait_for_port

CACHEABLE = {"Cache-Control": "max-age=60"}
OWNCDN = [sys.executable, "-m", "owncdn.cli"]


def _get(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None,
         name: str = "example.test") -> tuple[bool, ssl.SSLSession, str, bytes]:
    """(resumed, the session to come back with, X-Served-By, body) of one GET on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name, session=session) as tls:
            tls.sendall(f"GET /r HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            served_by = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                              if line.lower().startswith(b"x-served-by:")), "")
            assert tls.version() == "TLSv1.3" and head.startswith(b"HTTP/1.1 200"), head
            return tls.session_reused, tls.session, served_by, body


async def _in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _origin() -> FakeOrigin:
    origin = FakeOrigin()
    origin.route("/r", body=b"again", headers=CACHEABLE)
    return origin


async def test_a_returning_visitor_resumes_without_a_certificate(tmp_path):
    async with HttpsEdge(_origin(), state_dir=tmp_path / "state") as t:   # certificate by SNI, no default
        ctx = t.client_context()
        first, session, _, body = await _in_thread(_get, t.tls_port, ctx)
        assert not first and session.has_ticket and body == b"again"
        again, session2, _, _ = await _in_thread(_get, t.tls_port, ctx, session)
        assert again   # PSK: the certificate was neither sent nor verified
        assert (await _in_thread(_get, t.tls_port, ctx, session2))[0]
        assert not (await _in_thread(_get, t.tls_port, ctx))[0]   # no session offered: a full handshake


async def test_listeners_sharing_a_key_file_resume_each_others_tickets(tmp_path):
    shared = tmp_path / "tls-tickets"
    ca = TestCA()
    async with HttpsEdge(_origin(), ca=ca, server_options={"tls_tickets": str(shared)}) as a, \
            HttpsEdge(_origin(), ca=ca, server_options={"tls_tickets": str(shared)}) as b, \
            HttpsEdge(_origin(), ca=ca) as alone:
        ctx = a.client_context()
        _, session, _, _ = await _in_thread(_get, a.tls_port, ctx)
        assert (await _in_thread(_get, b.tls_port, ctx, session))[0]     # issued by a, resumed by b
        resumed, _, _, body = await _in_thread(_get, alone.tls_port, ctx, session)
        assert not resumed and body == b"again"   # a key of its own: a full handshake, served all the same


async def test_a_new_epoch_ends_old_tickets_and_issues_new_ones(tmp_path):
    async with HttpsEdge(_origin(), state_dir=tmp_path / "state") as t:
        ctx = t.client_context()
        _, old, _, _ = await _in_thread(_get, t.tls_port, ctx)
        assert t.certs.rotate_tickets(t.certs.tickets.next_change(time.time()) + 1)
        resumed, new, _, _ = await _in_thread(_get, t.tls_port, ctx, old)
        assert not resumed
        assert (await _in_thread(_get, t.tls_port, ctx, new))[0]


def test_the_key_file_is_private_moves_forward_and_is_shared(tmp_path):
    path = tmp_path / "tls-tickets"
    period = 3600.0
    a, b = TicketKeys(path, period), TicketKeys(path, period)
    key = a.current(10.0)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b.current(20.0) == key                                  # the second reads the first's
    stored_epoch, stored = schedule.load(path.read_bytes())
    later = a.current(2 * period + 5)                              # two epochs on
    assert later != key and b.current(2 * period + 6) == later
    assert schedule.load(path.read_bytes())[0] == stored_epoch + 2  # the old key is gone from disk
    assert schedule.openssl_key(schedule.ratchet(stored, stored_epoch, stored_epoch + 2)) == later
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_unreadable_key_file_is_replaced(tmp_path, capsys):
    path = tmp_path / "tls-tickets"
    path.write_bytes(b"garbage")
    assert len(TicketKeys(path).current(0.0)) == 80
    assert schedule.load(path.read_bytes())[0] == 0
    assert "unusable" in capsys.readouterr().err


async def test_workers_resume_tickets_the_other_worker_issued(tmp_path: Path):
    origin = await _origin().start()
    ca = TestCA()
    cert, key = ca.issue(["example.test"]).write(tmp_path, "site")
    (tmp_path / "cdn.yaml").write_text(
        f"version: 1\nedge: {{id: multi, location: here, access_log: 'off'}}\n"
        f"services:\n  - name: s\n    hostnames: [example.test]\n    origins: ['{origin.url}']\n")
    tls_port, admin = free_port(), free_ports_in_a_row(2)
    proc = subprocess.Popen(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml"), "--workers", "2",
                                      "--listen", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{admin}",
                                      "--tls-listen", f"127.0.0.1:{tls_port}", "--cert", str(cert), "--key", str(key),
                                      "--state-dir", str(tmp_path / "state")])
    try:
        for port in (admin, admin + 1):   # each worker binds its admin port after its listeners
            await wait_for_port(port, proc)
        ctx = ca.client_context()
        sessions: dict[str, ssl.SSLSession] = {}
        for _ in range(100):   # a ticket from each worker
            _, session, served_by, _ = await _in_thread(_get, tls_port, ctx)
            sessions.setdefault(served_by, session)
            if len(sessions) == 2:
                break
        assert set(sessions) == {"multi-w0 (here)", "multi-w1 (here)"}
        crossed = set()
        for issuer, session in sessions.items():
            for _ in range(100):   # until the other worker accepts a connection offering it
                resumed, _, served_by, _ = await _in_thread(_get, tls_port, ctx, session)
                assert resumed, (issuer, served_by)
                if served_by != issuer:
                    crossed.add(issuer)
                    break
        assert crossed == set(sessions)
        assert stat.S_IMODE(os.stat(tmp_path / "state" / "tls-tickets").st_mode) == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
        await origin.close()
