"""TLS at the edge: certificates by SNI through real handshakes, installing, replacing
and removing them on a live listener, persistence, protocol versions and ALPN."""

import json
import os
import ssl
import stat

import pytest

from owncdn.edge.tls import CertError, CertStore, served_chain
from owncdn.testing.certs import TestCA
from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin

CACHEABLE = {"Cache-Control": "max-age=60"}
BROKEN_KEY = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def ca():
    return TestCA()


@pytest.fixture(scope="module")
def leaves(ca):
    return {
        "apex": ca.issue(["example.test", "www.example.test"]),
        "wild": ca.issue(["*.example.test"]),
        "other": ca.issue(["other.test"]),
        "fallback": ca.issue(["fallback.test"]),
    }


# (server name sent as SNI) -> the certificate the edge must answer with; None: refused.
SNI_TABLE = [
    ("example.test", "apex"),
    ("www.example.test", "apex"),        # exact beats the wildcard
    ("img.example.test", "wild"),        # one label
    ("a.b.example.test", "fallback"),    # a wildcard covers one label only
    ("other.test", "other"),
    ("unknown.test", "fallback"),
    (None, "fallback"),                  # no SNI at all
]


async def _edge_with(ca, leaves, *, default: bool):
    t = HttpsEdge(FakeOrigin(), ca=ca, names=())
    await t.__aenter__()
    for name in ("apex", "wild", "other"):
        t.certs.install(name, [], leaves[name].cert_pem, leaves[name].key_pem)
    if default:
        t.certs.install("fallback", [], leaves["fallback"].cert_pem, leaves["fallback"].key_pem, default=True)
    return t


async def test_sni_selection_table_with_a_default(ca, leaves):
    t = await _edge_with(ca, leaves, default=True)
    try:
        for server_name, expected in SNI_TABLE:
            ctx = ca.client_context()
            ctx.check_hostname = False  # the fallback answers names it does not hold
            got = await t.handshake(server_name, ctx=ctx)
            assert got.fingerprint == leaves[expected].fingerprint, server_name
    finally:
        await t.__aexit__(None, None, None)


async def test_sni_without_a_default_refuses_unknown_names(ca, leaves):
    t = await _edge_with(ca, leaves, default=False)
    try:
        for server_name, expected in SNI_TABLE:
            if expected == "fallback":
                ctx = ca.client_context()
                ctx.check_hostname = False
                with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME|unrecognized name"):
                    await t.handshake(server_name, ctx=ctx)
            else:
                got = await t.handshake(server_name)  # hostname verified by the client too
                assert got.fingerprint == leaves[expected].fingerprint, server_name
        assert t.certs.handshakes_refused == 3
    finally:
        await t.__aexit__(None, None, None)


async def test_install_replace_remove_on_a_live_listener(ca):
    origin = FakeOrigin()
    origin.route("/a", body=b"ok", headers=CACHEABLE)
    async with HttpsEdge(origin, ca=ca, names=()) as t:
        with pytest.raises(ssl.SSLError):
            await t.handshake("example.test")  # nothing installed yet
        first = ca.issue(["example.test"])
        t.certs.install("site", ["example.test"], first.cert_pem, first.key_pem)
        assert (await t.handshake("example.test")).fingerprint == first.fingerprint
        client = t.httpx()
        r = await t.fetch("/a", client=client)  # a connection that stays open
        assert r.status_code == 200

        renewed = ca.issue(["example.test"])
        t.certs.install("site", ["example.test"], renewed.cert_pem, renewed.key_pem)
        assert t.certs.ids() == {"site": renewed.fingerprint}
        assert (await t.handshake("example.test")).fingerprint == renewed.fingerprint
        assert (await t.fetch("/a", client=client)).status_code == 200  # the open one goes on

        t.certs.remove("site")
        assert t.certs.ids() == {}
        with pytest.raises(ssl.SSLError):
            await t.handshake("example.test")
        t.certs.remove("site")  # unknown ids are ignored


async def test_a_bad_certificate_changes_nothing(ca):
    async with HttpsEdge(FakeOrigin(), ca=ca) as t:
        before = t.certs.ids()
        other = ca.issue(["example.test"])
        with pytest.raises(CertError, match="does not belong"):
            t.certs.install("site", [], t.leaf.cert_pem, other.key_pem)
        with pytest.raises(CertError, match="does not cover nope.test"):
            t.certs.install("site", ["nope.test"], other.cert_pem, other.key_pem)
        with pytest.raises(CertError, match="not a PEM"):
            t.certs.install("site", [], "garbage", other.key_pem)
        with pytest.raises(CertError, match="private key") as err:
            t.certs.install("site", [], other.cert_pem, BROKEN_KEY)
        assert "AAAA" not in str(err.value)
        assert t.certs.ids() == before
        assert (await t.handshake("img.example.test")).fingerprint == t.leaf.fingerprint


def test_persisted_owner_only_and_loaded_at_start(ca, tmp_path):
    a, b = ca.issue(["a.test"]), ca.issue(["*.b.test"], rsa=True)
    store = CertStore(tmp_path / "certs")
    store.install("a", [], a.cert_pem, a.key_pem)
    store.install("tenant/b", [], b.cert_pem, b.key_pem, default=True)
    store.install("cli", [], a.cert_pem, a.key_pem, persist=False)
    assert stat.S_IMODE(os.stat(tmp_path / "certs").st_mode) == 0o700
    files = sorted(os.listdir(tmp_path / "certs"))
    assert len(files) == 2 and not any(f.endswith(".tmp") for f in files)
    for name in files:
        assert stat.S_IMODE(os.stat(tmp_path / "certs" / name).st_mode) == 0o600
    assert json.loads((tmp_path / "certs" / "a.json").read_text())["names"] == ["a.test"]

    again = CertStore(tmp_path / "certs")
    assert again.ids() == {"a": a.fingerprint, "tenant/b": b.fingerprint}
    assert again.select("x.b.test").cert_id == "tenant/b"
    assert again.select("nothing.test").cert_id == "tenant/b"  # still the default
    again.remove("tenant/b")
    assert sorted(CertStore(tmp_path / "certs").ids()) == ["a"]


def test_a_broken_file_is_skipped_with_a_message(ca, tmp_path, capsys):
    good = ca.issue(["a.test"])
    CertStore(tmp_path).install("a", [], good.cert_pem, good.key_pem)
    (tmp_path / "b.json").write_text(json.dumps({"id": "b", "names": [], "cert": good.cert_pem,
                                                  "key": "SECRET-KEY-MATERIAL"}))
    (tmp_path / "c.json").write_text("not json")
    store = CertStore(tmp_path)
    assert list(store.ids()) == ["a"]
    err = capsys.readouterr().err
    assert "b.json" in err and "c.json" in err
    assert "SECRET" not in err


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused_and_1_2_and_1_3_are_served(ca):
    async with HttpsEdge(FakeOrigin(), ca=ca) as t:
        old = ca.client_context()
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):  # the server's alert, not a reset
            await t.handshake("example.test", ctx=old)
        for version, text in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            ctx = ca.client_context()
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ctx.maximum_version = version
            assert (await t.handshake("example.test", ctx=ctx)).version == text


async def test_tls_1_2_without_forward_secrecy_is_refused(ca):
    async with HttpsEdge(FakeOrigin(), ca=ca) as t:
        ctx = ca.client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-SHA:AES256-SHA:AES128-GCM-SHA256")  # RSA key exchange only
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
            await t.handshake("example.test", ctx=ctx)


@pytest.mark.parametrize(("offered", "chosen"), [
    (["h2", "http/1.1"], "h2"),
    (["http/1.1", "h2"], "h2"),          # the server's preference decides
    (["http/1.1"], "http/1.1"),
    (["spdy/3", "http/1.1"], "http/1.1"),
    (None, None),                        # no ALPN: HTTP/1.1
])
async def test_alpn(ca, offered, chosen):
    async with HttpsEdge(FakeOrigin(), ca=ca) as t:
        assert (await t.handshake("example.test", alpn=offered)).alpn == chosen


# -- the listener's own context and per-connection cleanup (edge/tls.py Rule 2,
#    edge/tlslistener.py Rule 4) ----------------------------------------------------


def _memory_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_name: str | None) -> str:
    """A TLS handshake through memory BIOs; the SHA-256 fingerprint of the certificate served."""
    import hashlib

    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(10):
        for i, (obj, out, peer_in) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done):
            break
    return hashlib.sha256(client.getpeercert(binary_form=True)).hexdigest()


def test_the_listener_holds_the_default_certificate_and_still_follows_replacements(ca, leaves):
    store = CertStore()
    first = ca.issue(["fallback.test"])
    store.install("fallback", [], first.cert_pem, first.key_pem, default=True)
    store.install("other", [], leaves["other"].cert_pem, leaves["other"].key_pem)
    listener = store.listener_context()
    assert listener is store.certs["fallback"].context  # the usual handshake needs no swap
    client = ca.client_context()
    client.check_hostname = False
    assert _memory_handshake(listener, client, "fallback.test") == first.fingerprint
    assert _memory_handshake(listener, client, "other.test") == leaves["other"].fingerprint
    assert _memory_handshake(listener, client, None) == first.fingerprint
    second = ca.issue(["fallback.test"])  # replaced without a restart: the same listener serves it
    store.install("fallback", [], second.cert_pem, second.key_pem, default=True)
    assert _memory_handshake(listener, client, "fallback.test") == second.fingerprint
    assert _memory_handshake(listener, client, "unknown.test") == second.fingerprint
    store.remove("fallback")  # no default any more: names nobody holds are refused
    with pytest.raises(ssl.SSLError):
        _memory_handshake(listener, client, "unknown.test")
    assert _memory_handshake(listener, client, "other.test") == leaves["other"].fingerprint


async def test_a_closed_https_connection_is_freed_by_reference_counting():
    import asyncio

    from owncdn.testing.refs import collector_off, freed_after

    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers=CACHEABLE)
    with collector_off():  # a reference cycle would keep the connection until the collector ran
        async with HttpsEdge(origin) as t:
            reader, writer = await asyncio.open_connection("127.0.0.1", t.tls_port, ssl=t.client_context(),
                                                           server_hostname="example.test")
            writer.write(b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            conns = [c for c in t.server.edge.connections if getattr(c, "scheme", "") == "https"]
            assert len(conns) == 1
            assert await freed_after(conns.pop(), writer.close)


# -- the chain served (edge/tls.py Rule 7) --------------------------------------------


def _chain_seen_by(server_ctx: ssl.SSLContext, ca: TestCA, server_name: str) -> list[str]:
    """The subjects of the chain a verifying client receives (pyOpenSSL, through memory BIOs)."""
    from OpenSSL import SSL, crypto

    client_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    store = client_ctx.get_cert_store()
    store.add_cert(crypto.X509.from_cryptography(ca.cert))
    client_ctx.set_verify(SSL.VERIFY_PEER)
    client = SSL.Connection(client_ctx, None)
    client.set_tlsext_host_name(server_name.encode())
    client.set_connect_state()
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(10):
        if not done[0]:
            try:
                client.do_handshake()
                done[0] = True
            except SSL.WantReadError:
                pass
        try:
            s_in.write(client.bio_read(65536))
        except SSL.WantReadError:
            pass
        if not done[1]:
            try:
                server.do_handshake()
                done[1] = True
            except ssl.SSLWantReadError:
                pass
        if s_out.pending:
            client.bio_write(s_out.read())
        if all(done):
            break
    assert all(done), "the handshake did not finish"
    return [c.to_cryptography().subject.rfc4514_string() for c in client.get_peer_cert_chain()]


def test_the_self_signed_ca_at_the_end_of_the_chain_is_not_sent(ca):
    leaf = ca.issue(["chain.test"])   # its chain: the leaf, then the CA
    assert leaf.cert_pem.count("BEGIN CERTIFICATE") == 2
    store = CertStore()
    store.install("chain", [], leaf.cert_pem, leaf.key_pem, default=True)
    # the verifying client still trusts the leaf: it holds the CA itself
    assert _chain_seen_by(store.listener_context(), ca, "chain.test") == ["CN=chain.test"]
    assert store.certs["chain"].fingerprint == leaf.fingerprint


def test_served_chain_keeps_the_leaf_and_every_certificate_not_self_signed(ca):
    leaf, middle = ca.issue(["a.test"]), ca.issue(["b.test"])
    one = leaf.cert_pem.split("-----END CERTIFICATE-----\n")[0] + "-----END CERTIFICATE-----\n"
    two = middle.cert_pem.split("-----END CERTIFICATE-----\n")[0] + "-----END CERTIFICATE-----\n"
    assert served_chain(leaf.cert_pem) == one                     # leaf, CA -> leaf
    assert served_chain(one) == one                               # nothing to drop: the same text
    assert served_chain(one + two + ca.cert_pem) == one + two     # a certificate the CA signed stays
    assert served_chain(ca.cert_pem) == ca.cert_pem               # a self-signed leaf is the leaf
    assert served_chain(one + TestCA("another CA").cert_pem) == one   # any self-signed one is an anchor
    # issuer = subject, but signed by another key: not self-signed, so it stays
    lookalike = _signed_by_another_key(ca)
    assert served_chain(one + lookalike) == one + lookalike


def _signed_by_another_key(ca: TestCA) -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(ca.cert.subject).issuer_name(ca.cert.subject)
            .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(ca.key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
