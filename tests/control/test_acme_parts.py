"""Parts of the ACME side without a CA: sealing keys, PEM checks, webhooks (real HTTP on loopback)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from owncdn.control.acme.notify import Notifier, Webhook, payload
from owncdn.control.acme.pem import PemError, check_pair, new_csr_pem, new_key_pem, parse_chain
from owncdn.control.acme.sealing import SealError, Sealer
from owncdn.testing.certs import TestCA
from owncdn.testing.origin import FakeOrigin, Reply


def test_keys_are_sealed_with_the_environment_key():
    pem = new_key_pem()
    for secret in (Fernet.generate_key().decode(), "a passphrase of any length"):
        sealer = Sealer(secret)
        sealed = sealer.seal(pem)
        assert sealed.startswith("fernet:") and "PRIVATE KEY" not in sealed
        assert sealer.open(sealed) == pem
        with pytest.raises(SealError) as err:
            Sealer("another key").open(sealed)
        assert "PRIVATE" not in str(err.value)
        with pytest.raises(SealError, match="OWNCDN_SECRET_KEY"):
            Sealer(None).open(sealed)
    assert Sealer(None).open(Sealer(None).seal(pem)) == pem
    assert repr(Sealer("x")) == "<Sealer fernet>"


def test_upload_checks_key_and_chain():
    ca = TestCA()
    leaf, other = ca.issue(["shop.example.com", "*.shop.example.com"]), ca.issue(["x.example.com"])
    info = check_pair(leaf.cert_pem, leaf.key_pem)
    assert info.names == ("*.shop.example.com", "shop.example.com") and len(info.fingerprint) == 64
    with pytest.raises(PemError, match="does not belong"):
        check_pair(leaf.cert_pem, other.key_pem)
    with pytest.raises(PemError) as err:
        check_pair("not a certificate", leaf.key_pem)
    with pytest.raises(PemError, match="private key does not parse") as err:
        check_pair(leaf.cert_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert "AAAA" not in str(err.value)
    assert parse_chain(leaf.cert_pem).not_after > parse_chain(leaf.cert_pem).not_before
    assert b"CERTIFICATE REQUEST" in new_csr_pem(leaf.key_pem, ["shop.example.com"])


def test_payloads_json_and_slack():
    hook = Webhook("https://hooks.example/services/T0/B0/SECRET", "slack")
    assert "SECRET" not in repr(hook)
    slack = payload(hook, "failed", "blog@p", ["blog.example.com"], "DNS problem", None, 0.0)
    assert list(slack) == ["text"] and "blog.example.com" in slack["text"] and "failed" in slack["text"]
    plain = payload(Webhook("http://h/x"), "renewed", "blog@p", ["blog.example.com"], "ok", 86400.0, 0.0)
    assert plain["event"] == "renewed" and plain["not_after"].startswith("1970-01-02")
    assert Webhook.parse("slack:https://h/x") == Webhook("https://h/x", "slack")
    with pytest.raises(ValueError):
        Webhook.parse("ftp://h/x")


async def test_webhooks_are_retried_until_delivered(monkeypatch):
    monkeypatch.setattr("owncdn.control.acme.notify.FIRST_DELAY", 0.01)
    receiver = FakeOrigin()
    receiver.route("/hook", responses=[Reply(503), Reply(500), Reply(200)])
    receiver.route("/gone", status=404)
    await receiver.start()
    try:
        notifier = Notifier([Webhook(f"{receiver.url}/hook"), Webhook(f"{receiver.url}/gone")])
        notifier.notify("issued", "blog@p", ["blog.example.com"], "issued by Pebble", 1.0e9, 0.0)
        await notifier.drain()
        assert receiver.hits("/hook") == 3 and receiver.hits("/gone") == 1  # a 4xx is not retried
        assert notifier.delivered == 1 and notifier.failed == 1
        assert json.loads(receiver.requests[-1].body if receiver.requests[-1].path == "/hook"
                          else receiver.requests[-2].body)["event"] == "issued"
    finally:
        await receiver.close()


async def test_ari_suggested_window_moves_renewal_earlier():
    """RFC 9773 against a scripted CA: the directory names ``renewalInfo``; the renewal
    information resource of the certificate suggests a window a day from now."""
    import asyncio
    import time

    from owncdn.control.acme.client import AcmeConnection
    from owncdn.core.certs import renew_at

    now = time.time()
    window = {"suggestedWindow": {"start": _rfc3339(now + 86400), "end": _rfc3339(now + 2 * 86400)}}
    asked = []
    origin = FakeOrigin()

    def directory(req):
        base = origin.url
        body = {"newNonce": f"{base}/nonce", "newAccount": f"{base}/acct", "newOrder": f"{base}/order",
                "revokeCert": f"{base}/revoke", "keyChange": f"{base}/key", "renewalInfo": f"{base}/ari"}
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def renewal_info(req):
        asked.append(req.path)
        return Reply(200, json.dumps(window).encode(), {"Content-Type": "application/json", "Retry-After": "3600"})

    origin.reply_for = lambda req: directory(req) if req.path == "/dir" else renewal_info(req)
    await origin.start()
    try:
        leaf = TestCA().issue(["a.example.com"], days=90)
        conn = await asyncio.to_thread(AcmeConnection, f"{origin.url}/dir", new_key_pem())
        start, ask_again = await asyncio.to_thread(conn.renewal_info, leaf.cert_pem)
        info = parse_chain(leaf.cert_pem)
        assert asked and asked[0].startswith("/ari/")  # /ari/<base64url AKI>.<base64url serial>
        assert now + 86400 - 5 <= start <= now + 2 * 86400 + 5
        assert ask_again > now + 3000
        assert renew_at(info.not_before, info.not_after, start) == start  # earlier than two thirds
    finally:
        await origin.close()


def _rfc3339(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
