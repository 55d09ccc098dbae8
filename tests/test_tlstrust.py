"""owncdn/tlstrust.py: httpx's TLS contexts made once and shared, so a client made
every round (the control plane's origin checks) no longer loads certifi's bundle
each time."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import httpx

from owncdn.control import origins
from owncdn.control.origins import OriginMonitor
from owncdn.tlstrust import unverified, verified


def test_rule_1_each_context_is_made_once_and_is_what_httpx_makes(monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first = verified()
    assert verified() is first and unverified() is unverified()
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert first.cert_store_stats()["x509_ca"] > 0  # certifi's bundle, as httpx's verify=True loads it
    loose = unverified()
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname


def test_rule_1_another_trust_setting_gets_its_own_context(monkeypatch, tmp_path):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default = verified()
    bundle = tmp_path / "one.pem"  # one authority of certifi's bundle: not the same trust
    pem = Path(certifi.where()).read_text()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    bundle.write_text(pem[start:pem.index("-----END CERTIFICATE-----", start) + 26])
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    own = verified()
    assert own is not default and own.cert_store_stats()["x509_ca"] == 1
    assert verified() is own
    monkeypatch.delenv("SSL_CERT_FILE")
    assert verified() is default


async def test_origin_checks_use_the_shared_contexts_every_round(monkeypatch):
    made = []
    real = httpx.AsyncClient

    def client(*args, **kwargs):
        made.append(kwargs.get("verify"))
        return real(*args, **kwargs)

    monkeypatch.setattr(origins.httpx, "AsyncClient", client)
    monkeypatch.setattr(origins, "targets", lambda store: [])
    monitor = OriginMonitor(store=None, settings=None)
    for _ in range(3):
        await monitor.round(1.0)
    assert len(made) == 6
    assert all(v is verified() for v in made[0::2]) and all(v is unverified() for v in made[1::2])
