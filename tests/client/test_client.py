"""``owncdn.client.Client`` end to end: the API under uvicorn on loopback, SQLite store."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from owncdn.client import ApiError, Client
from owncdn.control.api import ApiServer, create_app
from owncdn.control.store import Store, sqlite_url

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com]
"""


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    store = Store(sqlite_url(tmp_path_factory.mktemp("control")))
    store.migrate()
    _, admin = store.create_token("admin", {"admin"})
    with ApiServer(create_app(store, zone="cdn.example.net")) as server:
        yield server.url, admin, store
    store.close()


@pytest.fixture
def admin(control):
    url, token, _ = control
    with Client(url, token) as client:
        yield client


def test_health_and_tokens(control, admin):
    url, _, _ = control
    assert Client(url).health() == {"ok": True}
    made = admin.create_token("ci", {"deploy", "read"})
    assert made["scopes"] == ["deploy", "read"] and made["token"].startswith("ocdn_")
    assert made["id"] in {t["id"] for t in admin.list_tokens()}
    ci = Client(url, made["token"])
    assert ci.list_versions("tokens-env") == []
    with pytest.raises(ApiError) as denied:
        ci.create_token("more", ["admin"])
    assert denied.value.status == 403 and denied.value.code == "forbidden"
    assert str(denied.value) == "POST /v1/tokens needs a token with scope admin; token 'ci' has scopes: deploy, read"
    admin.revoke_token(made["id"])
    with pytest.raises(ApiError, match="unknown or revoked") as revoked:
        ci.list_versions("tokens-env")
    assert revoked.value.status == 401


def test_versions_rollback_and_services(admin):
    env = "client-versions"
    first = admin.add_version(env, SITE, comment="first")
    assert (first["number"], first["services"]) == (1, ["blog"])
    with pytest.raises(ApiError) as invalid:
        admin.add_version(env, SITE.replace("https://origin", "ftp://origin"))
    assert invalid.value.status == 422 and invalid.value.code == "invalid_config"
    assert invalid.value.problems == ["cdn.yaml:5:15: services[0].origins[0].url: expected an http:// or https:// URL, got 'ftp://origin.example.com'"]
    assert str(invalid.value).startswith("the config has a problem; nothing was stored")
    made = admin.create_service(env, "https://shop.example.com")
    assert (made["cname"], made["version"]) == ("shop-example-com.cdn.example.net", 2)
    assert [s["name"] for s in admin.services(env)["services"]] == ["blog", "shop-example-com"]
    with pytest.raises(ApiError, match="already has a service named 'shop-example-com'"):
        admin.create_service(env, "https://shop.example.com")
    back = admin.rollback(env, 1)
    assert (back["number"], back["comment"]) == (3, "rollback to v1")
    assert admin.get_version(env, 3)["source"] == SITE
    assert [v["number"] for v in admin.list_versions(env)] == [3, 2, 1]
    with pytest.raises(ApiError, match="has no version 9") as missing:
        admin.get_version(env, 9)
    assert missing.value.status == 404


def test_nodes_reports_status_and_purges(control, admin):
    url, _, store = control
    env = "client-nodes"
    admin.add_version(env, SITE)
    bootstrap = Client(url, admin.create_token("bootstrap", ["node"])["token"])
    nodes = [bootstrap.register_node(f"edge-{i}", "edge", "fra", env, f"192.0.2.{i}") for i in range(2)]
    edges = [Client(url, n["token"]) for n in nodes]
    assert edges[0].report(nodes[0]["node_id"], 1, "applied")["running_version"] == 1
    edges[1].report(nodes[1]["node_id"], 1, "rejected", reason="missing secret")
    with pytest.raises(ApiError, match="belongs to node"):
        edges[0].report(nodes[1]["node_id"], 1, "applied")
    status = admin.status(env)
    assert [(n["name"], n["drift"]) for n in status["nodes"]] == [("edge-0", False), ("edge-1", True)]
    assert {n["id"] for n in admin.nodes(env)} == {n["node_id"] for n in nodes}

    def ack_soon() -> None:  # what the edges' agents do when the purge event arrives
        while not store.purges_after(env, 0):
            time.sleep(0.01)
        purge_id = store.purges_after(env, 0)[0].id
        for node, edge in zip(nodes, edges):
            edge.ack_purge(node["node_id"], purge_id, ms=2.0, removed=1)

    acker = threading.Thread(target=ack_soon)
    acker.start()
    done = admin.purge(env, prefix="/assets/", soft=True, service="blog", wait=5)
    acker.join()
    assert done["spec"] == {"prefix": "/assets/", "soft": True, "service": "blog"}
    assert done["complete"] is True and sorted(a["name"] for a in done["acked"]) == ["edge-0", "edge-1"]
    assert admin.get_purge(env, done["id"])["complete"] is True
    with pytest.raises(ApiError, match="exactly one of url, prefix, tag or all=true"):
        admin.purge(env, url="/a", all=True)
    admin.delete_node(nodes[0]["node_id"])
    with pytest.raises(ApiError) as gone:
        edges[0].report(nodes[0]["node_id"], 1, "applied")
    assert gone.value.status == 401


def test_an_unreachable_control_plane_is_an_api_error_naming_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ApiError) as exc:
        Client(url, timeout=2).health()
    assert (exc.value.status, exc.value.code) == (0, "unreachable")
    assert str(exc.value).startswith(f"cannot reach the control plane at {url}: ")


def test_a_server_that_is_not_the_api_gives_a_readable_error(control):
    url, _, _ = control
    with pytest.raises(ApiError) as exc:
        Client(url + "/v1/health/x").health()  # a path prefix that makes every route unknown
    assert exc.value.status == 404 and "there is no endpoint GET /v1/health/x/v1/health" in str(exc.value)


def test_plain_http_loads_no_ca_bundle_and_would_refuse_any_tls():
    import ssl

    from owncdn.client.client import _verify

    context = _verify("HTTP://127.0.0.1:8400")
    assert isinstance(context, ssl.SSLContext)
    assert context.cert_store_stats()["x509_ca"] == 0                       # nothing trusted: fails closed
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert _verify("https://control.example:8400") is True                 # the system's CAs, SSL_CERT_FILE
