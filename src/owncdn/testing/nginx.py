"""A real nginx as an origin, for tests that need a server other than our own fakes.

    async with NginxOrigin(root_dir) as nginx:
        nginx.url            # http://127.0.0.1:<free port>
        nginx.requests()     # its access log, one `LoggedRequest` per request

Everything nginx writes (config, pid, logs, temp files) stays in its own temporary
directory; it runs in the foreground as one process and is stopped on exit.
Locations, all serving files from `root_dir`:

    /          static files, `Cache-Control: public, max-age=60`
    /short/    the same files with `max-age=1` (revalidation tests)
    /gz/       the same files gzip-compressed when asked, which nginx sends chunked
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format origin escape=none '$connection $connection_requests $status $request_method $uri '
                      '$body_bytes_sent "$http_if_none_match"';
    access_log {dir}/access.log origin;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ text/plain txt; text/html html; application/octet-stream bin; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 1000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root {root};
        location / {{
            add_header Cache-Control "public, max-age=60";
        }}
        location /short/ {{
            alias {root}/;
            add_header Cache-Control "public, max-age=1";
        }}
        location /gz/ {{
            alias {root}/;
            add_header Cache-Control "public, max-age=60";
            gzip on;
            gzip_types text/plain;
            gzip_min_length 0;
            gzip_proxied any;   # the edge adds Via, which nginx otherwise takes as "do not gzip"
            gzip_vary on;
        }}
{extra}
    }}
}}
"""


@dataclass(frozen=True)
class LoggedRequest:
    connection: int
    connection_requests: int
    status: int
    method: str
    path: str
    bytes: int
    if_none_match: str  # "" when the request had none


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxOrigin:
    def __init__(self, root_dir: str | os.PathLike, extra_config: str = "") -> None:
        self.root = Path(root_dir).resolve()
        self.extra_config = extra_config
        self.dir: Path | None = None
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<NginxOrigin {self.url} {state} root={self.root}>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="owncdn-nginx-")
        self.dir = Path(self._tmp.name)
        (self.dir / "tmp").mkdir()
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(CONFIG.format(dir=self.dir, port=self.port, root=self.root, extra=self.extra_config))
        return conf

    async def start(self, timeout: float = 5.0) -> "NginxOrigin":
        binary = find_nginx()
        if binary is None:
            raise RuntimeError("nginx is not installed (looked in PATH and /usr/sbin)")
        conf = self.write_config()
        out = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen([binary, "-p", str(self.dir), "-c", str(conf)],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        await self._wait_listening(timeout)
        return self

    async def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.errors()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"nginx did not listen on {self.port} within {timeout:g}s") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def errors(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.dir / "stderr.log", self.dir / "error.log") if p.exists()]
        return " | ".join(text.strip() for text in parts if text.strip()) or "(no output)"

    def requests(self) -> list[LoggedRequest]:
        """The access log so far (nginx writes each line when the request ends)."""
        log = self.dir / "access.log"
        out = []
        for line in log.read_text().splitlines() if log.exists() else ():
            conn, n, status, method, path, size, inm = line.split(" ", 6)
            inm = inm[1:-1]  # escape=none logs an absent field as "" (not "-")
            out.append(LoggedRequest(int(conn), int(n), int(status), method, path, int(size), inm))
        return out

    async def __aenter__(self) -> "NginxOrigin":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
