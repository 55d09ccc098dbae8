"""Worker command lines (pure): each worker gets its id, state, admin port and share."""

from pathlib import Path

import pytest

from owncdn.edge.workers import worker_args


@pytest.mark.parametrize("argv, i, expected", [
    (["--config", "c.yaml", "--workers", "2", "--admin", "127.0.0.1:9080"], 1,
     ["--config", "c.yaml", "--workers", "1", "--reuse-port", "--disk-share", "2", "--id", "e-w1",
      "--state-dir", "st/w1", "--tls-tickets", "st/tls-tickets", "--admin", "127.0.0.1:9081"]),
    (["--workers=2", "--id=x", "--reuse-port", "--listen", "0.0.0.0:80"], 0,
     ["--listen", "0.0.0.0:80", "--workers", "1", "--reuse-port", "--disk-share", "2", "--id", "e-w0",
      "--state-dir", "st/w0", "--tls-tickets", "st/tls-tickets", "--admin", "127.0.0.1:9080"]),
])
def test_worker_args(argv, i, expected):
    assert worker_args(argv, i, "e", Path("st"), "127.0.0.1:9080", count=2) == expected
