"""The local CA of `owncdn up` (cli/localca.py), checked with `openssl verify`."""

import shutil
import subprocess

import pytest

from owncdn.cli.localca import LocalCA

# rows: (names of the leaf, whether a CA limited to cdn.test and localhost may sign them)
ROWS = [
    (["demo.cdn.test"], True),
    (["demo.cdn.test", "*.cdn.test", "demo.localhost"], True),
    (["www.example.com"], False),
    (["demo.cdn.test", "bank.example"], False),
]


@pytest.mark.parametrize("names, allowed", ROWS)
def test_leaves_verify_only_inside_the_name_constraints(tmp_path, names, allowed):
    ca = LocalCA.load_or_create(tmp_path / "ca", permitted=["cdn.test", "localhost"])
    chain, key = ca.issue(names)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    openssl = shutil.which("openssl")
    assert openssl, "openssl is missing: scripts/test.sh installs it"
    done = subprocess.run([openssl, "verify", "-CAfile", str(ca.cert_path), "-purpose", "sslserver", str(leaf)],
                          capture_output=True, text=True)
    assert (done.returncode == 0) is allowed, done.stdout + done.stderr
    assert "PRIVATE KEY" in key


def test_the_ca_is_made_once_and_its_key_is_private(tmp_path):
    first = LocalCA.load_or_create(tmp_path / "ca", permitted=["cdn.test"])
    again = LocalCA.load_or_create(tmp_path / "ca", permitted=["cdn.test"])
    assert first.cert == again.cert
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
