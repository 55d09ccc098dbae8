"""Certificates from the control plane: the ``cert`` state channel on an edge.

Rules:
1. Each ``cert`` event installs (or replaces) the certificate in the edge's
   ``CertStore`` (``edge/tls.py``): the next TLS handshake uses it, no restart. A
   ``deleted`` event removes it. An event whose fingerprint is already installed
   changes nothing.
2. After changes, the edge reports every certificate id and fingerprint it has to
   ``POST /v1/nodes/{id}/certs``; changes arriving together are reported once
   (``REPORT_DELAY``). The control plane lists them as "which edges have it".
3. On every (re)connect the control plane lists the certificates that exist
   (``channel_keys``); one the edge holds that is not listed (deleted while the
   edge was away) is removed.
4. A certificate the store refuses (``CertError``: key and chain do not match, names
   not covered) is logged by id with the reason and not reported; the key is never
   logged.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["cert_handler", "cert_pruner", "follow_certs"]

REPORT_DELAY = 0.05


async def cert_handler(agent, http, data: dict) -> None:
    store = getattr(agent.edge, "certs", None)
    if store is None:
        return
    cert_id = data["key"]
    if data.get("deleted"):
        store.remove(cert_id)
    else:
        from owncdn.edge.tls import CertError

        try:
            if store.ids().get(cert_id) != _fingerprint(data["cert_pem"]):
                store.install(cert_id, data.get("names") or [], data["cert_pem"], data["key_pem"])
        except CertError as exc:
            print(f"owncdn edge: certificate {cert_id} not installed: {exc}", file=sys.stderr, flush=True)
            return
    _schedule_report(agent, http)


async def cert_pruner(agent, http, keys: set) -> None:
    """Rule 3."""
    store = getattr(agent.edge, "certs", None)
    if store is None:
        return
    gone = [cert_id for cert_id in store.ids() if cert_id not in keys]
    for cert_id in gone:
        store.remove(cert_id)
    if gone:
        _schedule_report(agent, http)


def _fingerprint(chain_pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificates(chain_pem.encode())[0].fingerprint(hashes.SHA256()).hex()


def _schedule_report(agent, http) -> None:
    """Rule 2: one report task at a time; changes made while it runs send another report."""
    agent._certs_dirty = True
    task = getattr(agent, "_cert_report", None)
    if task is not None and not task.done():
        return

    async def report() -> None:
        while agent._certs_dirty:
            await asyncio.sleep(REPORT_DELAY)
            agent._certs_dirty = False
            body = {"certs": agent.edge.certs.ids()}
            try:
                await agent._send(http, f"/v1/nodes/{agent.node_id}/certs", body)
            except Exception as exc:  # noqa: BLE001 - the next change or reconnect reports again
                print(f"owncdn edge: reporting certificates: {exc or type(exc).__name__}", file=sys.stderr, flush=True)

    agent._cert_report = asyncio.get_running_loop().create_task(report())


def follow_certs(agent) -> None:
    """Register the certificate and HTTP-01 handlers on an edge's sync agent."""
    from owncdn.edge.challenges import acme_http_handler

    agent.handlers["cert"] = cert_handler
    agent.pruners["cert"] = cert_pruner
    agent.handlers["acme_http"] = acme_http_handler
