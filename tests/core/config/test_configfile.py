"""load_config: the file and environment side of the config."""

import pytest

from owncdn.configfile import load_config
from owncdn.core.config import ConfigError

CONFIG = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com]
    headers:
      request:
        set: {X-Token: '${file:secrets/token.txt}', X-Env: '${env:OWNCDN_TEST_TOKEN}'}
"""


def test_load_config_resolves_env_and_files_relative_to_the_config(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token.txt").write_text("file-token\n")
    (tmp_path / "cdn.yaml").write_text(CONFIG)
    monkeypatch.chdir("/")
    config = load_config(tmp_path / "cdn.yaml", env={"OWNCDN_TEST_TOKEN": "env-token"})
    headers = config.services[0].headers.request.set
    assert (headers["X-Token"], headers["X-Env"]) == ("file-token", "env-token")


def test_load_config_reads_os_environ_by_default(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token.txt").write_text("t")
    (tmp_path / "cdn.yaml").write_text(CONFIG)
    monkeypatch.setenv("OWNCDN_TEST_TOKEN", "from-os")
    assert load_config(tmp_path / "cdn.yaml").services[0].headers.request.set["X-Env"] == "from-os"


def test_missing_secret_file_is_a_problem_at_its_line(tmp_path):
    (tmp_path / "cdn.yaml").write_text(CONFIG)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "cdn.yaml", env={})
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and all(":8:" in line for line in lines)
    assert "token.txt' not found" in lines[0] and "OWNCDN_TEST_TOKEN" in lines[1]


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda p: None, "file not found"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"version: \xff\n"), "not UTF-8"),
])
def test_unreadable_config_file_is_a_config_error(tmp_path, make, fragment):
    path = tmp_path / "cdn.yaml"
    make(path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:1:1: ")
    assert fragment in str(info.value)
