"""A real, throwaway PostgreSQL server for tests.

    with PostgresServer() as pg:
        pg.url                          # postgresql+psycopg://postgres@127.0.0.1:<port>/owncdn_test
        url = pg.create_database("t1")  # another empty database on the same server
        pg.drop_database("t1")

The cluster lives in its own temporary directory (data, unix socket, log), listens on
127.0.0.1 at a free port with trust authentication, runs with `fsync=off`, and is
stopped (`pg_ctl stop -m fast`) and removed on exit. PostgreSQL refuses to run as root,
so as root every server command runs as the `postgres` system user (`runuser -u
postgres --`) in a directory handed to that user; otherwise it runs as the caller.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

HOW_TO_INSTALL = ("PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: "
                  "run scripts/test.sh as root, which installs Debian's `postgresql` package")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
DB_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/<version>/bin."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise RuntimeError(HOW_TO_INSTALL)


def _version_key(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, database: str = "owncdn_test", *, start_timeout: float = 30.0) -> None:
        self.database = database
        self.start_timeout = start_timeout
        self.port = 0
        self.dir: Path | None = None
        self._bindir: Path | None = None
        self._as_user: list[str] = []
        self._running = False

    def __repr__(self) -> str:
        return f"<PostgresServer 127.0.0.1:{self.port} {'running' if self._running else 'stopped'}>"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> PostgresServer:
        self._bindir = find_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="owncdn-pg-"))
        try:
            self._hand_over_dir()
            self._initdb()
            self.port = free_port()
            self._pg_ctl_start()
            self._running = True
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._running:
            self._run("pg_ctl", "stop", "-D", str(self.dir / "data"), "-m", "fast", "-w", check=False)
            self._running = False
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database; its URL."""
        self._admin(f"CREATE DATABASE {_check_name(name)}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {_check_name(name)} WITH (FORCE)")

    def _admin(self, sql: str) -> None:
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    # -- plumbing ----------------------------------------------------------------------

    def _hand_over_dir(self) -> None:
        """As root, the server runs as the postgres user, which must own its directory."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise RuntimeError(f"running as root but there is no {SYSTEM_USER!r} system user: "
                               + HOW_TO_INSTALL) from None
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._as_user = ["runuser", "-u", SYSTEM_USER, "--"]

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.dir / "data"), "-U", SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
        (self.dir / "sock").mkdir()
        if self._as_user:
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.dir / "sock", user.pw_uid, user.pw_gid)

    def _pg_ctl_start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir / 'sock'} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        try:
            self._run("pg_ctl", "start", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
                      "-w", "-t", str(int(self.start_timeout)), "-o", options)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log:\n{self._log_tail()}") from None

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        cmd = [*self._as_user, str(self._bindir / program), *args]
        out = subprocess.run(cmd, cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"{program} failed with {out.returncode}: "
                               f"{(out.stderr or out.stdout).strip() or '(no output)'}")

    def _log_tail(self, lines: int = 20) -> str:
        log = self.dir / "server.log" if self.dir else None
        if log is None or not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _check_name(name: str) -> str:
    if not DB_NAME_RE.fullmatch(name):
        raise ValueError(f"database name {name!r}: expected lowercase letters, digits and '_'")
    return name
