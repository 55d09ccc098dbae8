"""Certificates from a real ACME CA: Pebble (Debian's package) with owncdn as the only client.

Each test runs the control plane (with its certificate manager), edges following it,
and Pebble on loopback; DNS-01 tests point Pebble's resolver at owncdn's own DNS
server, the HTTP-01 test at pebble-challtestsrv (every name is 127.0.0.1) with the
CA's HTTP port set to an edge's port.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import subprocess
import sys

import pytest
from acme import messages

from owncdn.control.acme import Webhook
from owncdn.control.acme.client import AcmeConnection, AcmeFailure
from owncdn.control.acme.manager import ManagerSettings
from owncdn.testing.dnsnode import DnsNodeUnderTest
from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin
from owncdn.testing.pebble import ChallTestSrv, Pebble


def config(directory: str, services: dict[str, str], challenge: str = "dns-01", origin: str = "http://127.0.0.1:9") -> str:
    lines = ["version: 1", f"acme: {{directory: {json.dumps(directory)}, email: ops@example.com}}", "services:"]
    for name, host in services.items():
        lines += [f"  - name: {name}", f"    hostnames: [{host}]", f"    origins: [{origin}]",
                  f"    tls: {{acme: true, challenge: {challenge}}}"]
    return "\n".join(lines) + "\n"


def settings(pebble: Pebble, *hooks: Webhook, backoff: float = 3600.0) -> ManagerSettings:
    return ManagerSettings(ca_bundle=pebble.ca_bundle, interval=0.2, backoff_base=backoff,
                           propagation_timeout=10.0, webhooks=hooks)


async def certs(fleet) -> dict[str, dict]:
    return {c["id"]: c for c in await asyncio.to_thread(fleet.api.certs)}


async def until(predicate, what: str, timeout: float = 60.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def on_every_edge(fleet, cert_id: str, fingerprint: str | None = None) -> dict:
    """The certificate once it is valid and every edge reported it installed (with
    ``fingerprint`` other than the one given, when given)."""
    async def ready():
        cert = (await certs(fleet)).get(cert_id)
        if cert is None or cert["status"] != "valid" or cert["fingerprint"] == fingerprint:
            return None
        if len(cert["edges"]) == len(fleet.edges) and all(e["current"] for e in cert["edges"]):
            return cert
        return None

    return await until(ready, f"{cert_id} valid on every edge")


def handshake(host: str, port: int, server_name: str, root_pem: str) -> tuple[str, list[str]]:
    """A real TLS handshake, verified against Pebble's root: (leaf fingerprint, ALPN)."""
    ctx = ssl.create_default_context(cadata=root_pem)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            return hashlib.sha256(der).hexdigest(), tls.selected_alpn_protocol()


def hook_events(origin: FakeOrigin) -> list[dict]:
    return [json.loads(r.body) for r in origin.requests if r.path == "/hook"]


async def test_dns01_issued_once_served_by_three_edges_then_renewed_without_restart(tmp_path):
    receiver = FakeOrigin()
    receiver.route("/hook", status=204)
    receiver.route("/slack", status=200)
    await receiver.start()
    fleet = Fleet(tmp_path, edges=3)
    fleet.tls = True
    async with fleet:
        async with DnsNodeUnderTest(fleet, tmp_path / "dns") as dns:
            with Pebble(tmp_path / "pebble", dns=f"127.0.0.1:{dns.port}") as pebble:
                fleet.acme = settings(pebble, Webhook(f"{receiver.url}/hook", "json"),
                                      Webhook(f"{receiver.url}/slack", "slack"))
                await fleet.stop_control()
                await fleet.start_control()
                await _nodes_connected(fleet, dns)
                await fleet.apply(config(pebble.directory, {"blog": "blog.example.com"}))
                cert = await on_every_edge(fleet, "blog@production")
                assert cert["names"] == ["blog.example.com"] and cert["source"] == "acme"
                assert "Pebble" in cert["issuer"]
                root = pebble.roots_pem()
                for edge in fleet.edges:  # each edge serves it: a verified handshake by SNI
                    host = edge.tls_server.sockets[0].getsockname()[0]
                    fingerprint, alpn = await asyncio.to_thread(handshake, host, edge.tls_port, "blog.example.com", root)
                    assert fingerprint == cert["fingerprint"] and alpn == "h2"
                assert fleet.store.order_count("blog@production") == 1

                # renew: a new certificate reaches every edge, whose listener keeps running
                listeners = [edge.tls_server for edge in fleet.edges]
                cli = [sys.executable, "-m", "owncdn.cli", "certs", "renew", "blog.example.com",
                       "--control", fleet.url, "--token", fleet.admin_token, "--wait", "60"]
                done = await asyncio.to_thread(subprocess.run, cli, capture_output=True, text=True, timeout=90)
                assert done.returncode == 0 and "renewed: blog@production" in done.stdout, done.stderr
                renewed = await on_every_edge(fleet, "blog@production", fingerprint=cert["fingerprint"])
                for edge, listener in zip(fleet.edges, listeners):
                    assert edge.tls_server is listener
                    host = listener.sockets[0].getsockname()[0]
                    fingerprint, _ = await asyncio.to_thread(handshake, host, edge.tls_port, "blog.example.com", root)
                    assert fingerprint == renewed["fingerprint"]
                assert fleet.store.order_count("blog@production") == 2
                await until(lambda: _events(receiver, 2), "two webhook deliveries")
                events = hook_events(receiver)
                assert [e["event"] for e in events] == ["issued", "renewed"]
                assert events[0]["certificate"] == "blog@production" and events[0]["names"] == ["blog.example.com"]
                slack = [json.loads(r.body) for r in receiver.requests if r.path == "/slack"]
                assert len(slack) == 2 and set(slack[0]) == {"text"} and "blog.example.com" in slack[0]["text"]
                assert "PRIVATE KEY" not in json.dumps(await certs(fleet))
    await receiver.close()


async def _nodes_connected(fleet, dns) -> None:
    """Edges (and the DNS node) stream from the restarted control plane again."""
    if dns is not None:
        await dns.connected()
    for edge in fleet.edges:
        await asyncio.wait_for(edge.agent.connected.wait(), 10)


async def _events(receiver: FakeOrigin, count: int) -> bool:
    return len(hook_events(receiver)) >= count and sum(r.path == "/slack" for r in receiver.requests) >= count


async def test_http01_answered_by_an_edge(tmp_path):
    fleet = Fleet(tmp_path, edges=1, spread=False)
    async with fleet:
        with ChallTestSrv(tmp_path / "challtestsrv") as mockdns:
            with Pebble(tmp_path / "pebble", dns=f"127.0.0.1:{mockdns.dns_port}", http_port=fleet.edges[0].port) as pebble:
                fleet.acme = settings(pebble)
                await fleet.stop_control()
                await fleet.start_control()
                await _nodes_connected(fleet, None)
                await fleet.apply(config(pebble.directory, {"www": "www.example.org"}, challenge="http-01"))
                cert = await on_every_edge(fleet, "www@production")
                assert cert["names"] == ["www.example.org"]
                assert "www.example.org" in fleet.edges[0].certs.select("www.example.org").names
                assert "http-01" in pebble.log() or cert["status"] == "valid"


async def test_failed_validation_is_reported_by_webhook(tmp_path):
    receiver = FakeOrigin()
    receiver.route("/hook", status=200)
    await receiver.start()
    fleet = Fleet(tmp_path, edges=1)
    async with fleet:
        # Pebble asks a DNS server that knows no challenge records: DNS-01 must fail
        with ChallTestSrv(tmp_path / "challtestsrv") as mockdns:
            with Pebble(tmp_path / "pebble", dns=f"127.0.0.1:{mockdns.dns_port}") as pebble:
                fleet.acme = ManagerSettings(ca_bundle=pebble.ca_bundle, interval=0.2, backoff_base=3600,
                                             propagation_timeout=0.5, webhooks=(Webhook(f"{receiver.url}/hook"),))
                await fleet.stop_control()
                await fleet.start_control()
                await _nodes_connected(fleet, None)
                await fleet.apply(config(pebble.directory, {"shop": "shop.example.net"}))
                await until(lambda: _hook_count(receiver, 1), "a failure webhook")
                event = hook_events(receiver)[0]
                assert event["event"] == "failed" and event["certificate"] == "shop@production"
                assert "shop.example.net" in event["message"]
                cert = (await certs(fleet))["shop@production"]
                assert cert["status"] == "failing" and cert["failures"] == 1
                assert "shop.example.net" in cert["last_error"]
                assert cert["edges"] == []
    await receiver.close()


async def _hook_count(receiver: FakeOrigin, count: int) -> bool:
    return len(hook_events(receiver)) >= count


async def test_five_edges_and_three_names_make_exactly_three_orders(tmp_path):
    """One of the names is a wildcard (DNS-01 only). Two control-plane replicas on one store, both running the manager: the store's
    lease and the re-check under it make one order per certificate for the fleet."""
    from owncdn.control.server import database_url, serve
    from owncdn.control.store import Store
    from owncdn.testing.fleet import free_port

    fleet = Fleet(tmp_path, edges=5)
    async with fleet:
        async with DnsNodeUnderTest(fleet, tmp_path / "dns") as dns:
            with Pebble(tmp_path / "pebble", dns=f"127.0.0.1:{dns.port}") as pebble:
                fleet.acme = settings(pebble)
                await fleet.stop_control()
                await fleet.start_control()
                await _nodes_connected(fleet, dns)
                replica_store = Store(database_url(tmp_path / "control", None))
                replica = asyncio.get_running_loop().create_task(
                    serve(replica_store, "127.0.0.1", free_port(), "cdn.test", acme=settings(pebble)))
                try:
                    names = {"a": "a.example.com", "b": "b.example.com", "c": '"*.c.example.org"'}  # c: a wildcard
                    await fleet.apply(config(pebble.directory, names))
                    for service in names:
                        await on_every_edge(fleet, f"{service}@production")
                    assert fleet.store.order_count() == 3
                    for edge in fleet.edges:
                        assert set(edge.certs.ids()) == {"a@production", "b@production", "c@production"}
                        assert edge.certs.select("x.c.example.org").cert_id == "c@production"
                finally:
                    replica.cancel()
                    await asyncio.gather(replica, return_exceptions=True)
                    replica_store.close()


def test_registration_that_lost_a_race_asks_again_and_finds_the_account(tmp_path):
    """Replicas and worker threads register the directory's account key together. Pebble
    fails the loser of such a race with ``serverInternal`` ("Error saving account": its
    store already holds the key); asking again finds the account the winner made."""
    def losing(conn, times, meanwhile=lambda: None):
        real, calls = conn.acme.new_account, []

        def new_account(reg):
            calls.append(reg)
            if len(calls) <= times:
                meanwhile()
                raise messages.Error.with_code("serverInternal", detail="Error saving account")
            return real(reg)
        conn.acme.new_account = new_account
        return calls

    with ChallTestSrv(tmp_path / "dns") as dns, Pebble(tmp_path / "pebble", dns=f"127.0.0.1:{dns.dns_port}") as pebble:
        key = AcmeConnection.new_account_key()
        winner = AcmeConnection(pebble.directory, key, ca_bundle=pebble.ca_bundle)
        loser = AcmeConnection(pebble.directory, key, ca_bundle=pebble.ca_bundle)
        calls = losing(loser, 1, meanwhile=lambda: winner.register("ops@example.com"))
        assert loser.register("ops@example.com") == winner.account_uri
        assert len(calls) == 2 and winner.account_uri.startswith(f"https://127.0.0.1:{pebble.port}/")
        broken = AcmeConnection(pebble.directory, AcmeConnection.new_account_key(), ca_bundle=pebble.ca_bundle)
        calls = losing(broken, 99)
        with pytest.raises(AcmeFailure, match="the CA refused the account: .*Error saving account"):
            broken.register(None)
        assert len(calls) == 3
