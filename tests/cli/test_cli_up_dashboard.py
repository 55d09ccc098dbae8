"""The dashboard of a real `owncdn up`: the address it prints serves the sign-in page,
and the admin token from the path it prints signs in (HTTP only, no browser).

`owncdn up` runs as a user runs it: its own process group, free ports (port 0), state
in a temporary directory; the test reads what it printed, as a user would.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

DASHBOARD = re.compile(r"^  dashboard +(http://127\.0\.0\.1:\d+/) +\(sign in with the admin token: cat (\S+)\)", re.M)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """A running `owncdn up`; yields (dashboard URL, admin token path) as printed."""
    home = tmp_path_factory.mktemp("up")
    log = home / "out.txt"
    out = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "owncdn.cli", "up", "--state-dir", str(home / "state"), "--port", "0",
         "--dns-port", "0", "--control-port", "0", "--tls-port", "0", "--edges", "1"],
        cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield _wait_printed(proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # `owncdn up` stops its children
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


def _wait_printed(proc, log: Path) -> tuple[str, Path]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text()
        found = DASHBOARD.search(text)
        if found and "owncdn is up" in text:
            return found.group(1), Path(found.group(2))
        if proc.poll() is not None:
            raise AssertionError(f"owncdn up exited with {proc.returncode}:\n{text}")
        time.sleep(0.2)
    raise AssertionError(f"owncdn up did not come up:\n{log.read_text()}")


def test_the_printed_dashboard_serves_the_sign_in_page_and_the_printed_token_signs_in(printed):
    url, token_path = printed
    with httpx.Client(base_url=url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'id="login-form"' in page.text and '/dashboard/app.js' in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for name in ("app.js", "live.js", "pages.js", "style.css"):
            assert http.get(f"/dashboard/{name}").status_code == 200, name

        refused = http.get("/v1/dashboard/whoami", headers={"Authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
        token = token_path.read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        who = http.get("/v1/dashboard/whoami", headers=auth)
        assert who.status_code == 200, who.text
        assert who.json()["name"] == "admin" and "admin" in who.json()["scopes"]
        # what the Overview asks first: the example config `up` applied, as version 1
        status = http.get("/v1/envs/production/status", headers=auth).json()
        assert status["latest_version"] == 1

        # the live stream answers with its first tick at once
        with http.stream("GET", "/v1/dashboard/events", headers=auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "event: changed"
            assert next(lines).startswith('data: {"digest":')
