"""The certificate API with edges following it: upload, list, delete, renew, scopes.

An uploaded certificate reaches every edge through the ``cert`` channel and is served
at the next handshake; the API never returns a key.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from owncdn.client import ApiError, Client
from owncdn.control.acme.manager import ManagerSettings
from owncdn.testing.certs import TestCA
from owncdn.testing.fleet import Fleet


async def until(predicate, what: str, timeout: float = 20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def served_names(edge, ca: TestCA, server_name: str) -> tuple:
    host = edge.tls_server.sockets[0].getsockname()[0]
    with socket.create_connection((host, edge.tls_port), timeout=5) as raw:
        with ca.client_context().wrap_socket(raw, server_hostname=server_name) as tls:
            return tuple(v for k, v in tls.getpeercert()["subjectAltName"])


async def test_uploaded_certificate_reaches_every_edge_and_its_key_never_comes_back(tmp_path):
    ca = TestCA()
    leaf = ca.issue(["shop.example.com", "*.shop.example.com"])
    fleet = Fleet(tmp_path, edges=2)
    fleet.tls, fleet.acme = True, ManagerSettings(enabled=False)
    async with fleet:
        api = fleet.api
        out = await asyncio.to_thread(api.put_cert, "shop", leaf.cert_pem, leaf.key_pem)
        assert out["source"] == "upload" and out["names"] == ["*.shop.example.com", "shop.example.com"]

        async def everywhere():
            cert = await asyncio.to_thread(api.cert, "shop")
            return cert if len(cert["edges"]) == 2 and all(e["current"] for e in cert["edges"]) else None

        cert = await until(everywhere, "the upload on both edges")
        assert cert["status"] == "valid" and cert["fingerprint"] == out["fingerprint"]
        for edge in fleet.edges:
            names = await asyncio.to_thread(served_names, edge, ca, "a.shop.example.com")
            assert "*.shop.example.com" in names
        listing = await asyncio.to_thread(api.certs)
        assert "PRIVATE KEY" not in repr(listing) and all("key_pem" not in c for c in listing)

        # replace: a new leaf for the same id; then delete: the edges drop it
        newer = ca.issue(["shop.example.com"])
        await asyncio.to_thread(api.put_cert, "shop", newer.cert_pem, newer.key_pem)
        newer_fp = _fp(newer)
        await until(lambda: _fingerprints(fleet, "shop", newer_fp), "the replacement")
        await asyncio.to_thread(api.delete_cert, "shop")
        await until(lambda: _gone(fleet, "shop"), "the edges dropping it")


async def test_a_certificate_deleted_while_an_edge_was_down_is_dropped_when_it_returns(tmp_path):
    ca = TestCA()
    fleet = Fleet(tmp_path, edges=2)
    fleet.tls, fleet.acme = True, ManagerSettings(enabled=False)
    async with fleet:
        api = fleet.api
        for cert_id in ("shop", "blog"):
            leaf = ca.issue([f"{cert_id}.example.com"])
            await asyncio.to_thread(api.put_cert, cert_id, leaf.cert_pem, leaf.key_pem)
        await until(lambda: _everywhere(fleet, {"shop", "blog"}), "both certificates on both edges")
        await fleet.stop_edge(1)
        await asyncio.to_thread(api.delete_cert, "shop")
        await until(lambda: _gone(fleet, "shop", [fleet.edges[0]]), "the running edge dropping it")
        edge = await fleet.restart_edge(1)
        assert "shop" in edge.certs.ids()  # read back from its disk, as it was when it stopped
        await until(lambda: _everywhere(fleet, {"blog"}), "the returning edge dropping the deleted one")
        cert = await until(lambda: _reported_by(api, "blog", 2), "both edges reporting what they hold")
        assert cert["status"] == "valid"


async def _everywhere(fleet, ids: set) -> bool:
    return all(set(edge.certs.ids()) == ids for edge in fleet.edges)


async def _reported_by(api, cert_id: str, count: int):
    cert = await asyncio.to_thread(api.cert, cert_id)
    return cert if len(cert["edges"]) == count else None


def _fp(leaf) -> str:
    from owncdn.control.acme.pem import parse_chain

    return parse_chain(leaf.cert_pem).fingerprint


async def _fingerprints(fleet, cert_id: str, fingerprint: str) -> bool:
    return all(edge.certs.ids().get(cert_id) == fingerprint for edge in fleet.edges)


async def _gone(fleet, cert_id: str, edges=None) -> bool:
    return all(cert_id not in edge.certs.ids() for edge in (edges or fleet.edges))


async def test_checks_and_scopes(tmp_path):
    ca = TestCA()
    leaf, other = ca.issue(["a.example.com"]), ca.issue(["b.example.com"])
    fleet = Fleet(tmp_path, edges=0)
    fleet.acme = ManagerSettings(enabled=False)
    async with fleet:
        api = fleet.api
        read = Client(fleet.url, (await asyncio.to_thread(api.create_token, "r", ["read"]))["token"])
        deploy = Client(fleet.url, (await asyncio.to_thread(api.create_token, "d", ["deploy"]))["token"])
        with pytest.raises(ApiError) as err:
            await asyncio.to_thread(read.put_cert, "a", leaf.cert_pem, leaf.key_pem)
        assert err.value.status == 403
        with pytest.raises(ApiError) as err:
            await asyncio.to_thread(deploy.put_cert, "a", leaf.cert_pem, other.key_pem)
        assert err.value.status == 422 and "does not belong" in str(err.value)
        with pytest.raises(ApiError) as err:
            await asyncio.to_thread(deploy.put_cert, "a", leaf.cert_pem, leaf.key_pem, ["b.example.com"])
        assert err.value.status == 422 and "b.example.com" in str(err.value)
        await asyncio.to_thread(deploy.put_cert, "a", leaf.cert_pem, leaf.key_pem)
        assert [c["id"] for c in await asyncio.to_thread(read.certs)] == ["a"]
        with pytest.raises(ApiError) as err:
            await asyncio.to_thread(deploy.renew_cert, "a")
        assert err.value.status == 409  # an upload is replaced, not renewed
        with pytest.raises(ApiError) as err:
            await asyncio.to_thread(deploy.delete_cert, "nope")
        assert err.value.status == 404
        node = await asyncio.to_thread(api.register_node, "edge-x", "edge", "fra", "production", "127.0.0.1:1")
        with pytest.raises(ApiError) as err:  # only that node's own token may report for it
            await asyncio.to_thread(deploy.report_certs, node["node_id"], {"a": "f"})
        assert err.value.status == 403
        await asyncio.to_thread(Client(fleet.url, node["token"]).report_certs, node["node_id"], {"a": "f"})
        assert (await asyncio.to_thread(read.cert, "a"))["edges"][0]["current"] is False
