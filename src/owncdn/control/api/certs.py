"""Certificates: list, upload or replace, delete, force a renewal; what edges installed.

Rule 1: a private key goes in (``PUT``) and out only on a node's own event stream
(the ``cert`` channel); no response of this API carries one.
Rule 2: an upload is checked before anything is stored (``owncdn.control.acme.pem``
Rule 2): the chain parses, the key is the leaf's key, and every name given is on
the certificate.
Rule 3: ``edges`` of a certificate lists the nodes that reported it installed
(``POST /v1/nodes/{id}/certs``), and whether they have the current one.
Rule 4: ``GET /v1/certs/{id}/history`` is the certificate's history, newest first:
issued, renewed, uploaded (time, CA, serial, expiry) and failed (time, error), as the
store keeps it (``cert_events``); never key material.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from owncdn.control.acme.pem import PemError, check_pair
from owncdn.control.acme.sealing import Sealer
from owncdn.control.store import Token

from .auth import Ctx, node_token, require
from .channels import state_changed
from .errors import ApiProblem, error_responses
from .schemas import utc

__all__ = ["router"]

router = APIRouter(tags=["certificates"])
CERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")
CertId = Annotated[str, Path(description="The certificate's id: `<service>@<env>` for ACME ones, any name for uploads.")]


class CertEdge(BaseModel):
    node_id: str
    name: str
    current: bool = Field(description="The node has this certificate's current fingerprint.")


class CertOut(BaseModel):
    id: str
    env: str | None
    source: str = Field(description="`acme` or `upload`.")
    names: list[str]
    status: str = Field(description="`valid`, `pending` (not issued yet), `failing` (the last attempt failed) or `expired`.")
    issuer: str
    fingerprint: str
    not_before: datetime | None
    not_after: datetime | None
    renew_at: datetime | None
    failures: int
    last_error: str
    edges: list[CertEdge]


class CertEventOut(BaseModel):
    kind: str = Field(description="`issued`, `renewed`, `uploaded` or `failed`.")
    at: datetime
    issuer: str = Field(description="The issuing CA's name ('' for a failure).")
    directory: str = Field(description="The ACME directory asked ('' for uploads).")
    serial: str = Field(description="The certificate's serial number, hex ('' for a failure).")
    fingerprint: str
    not_after: datetime | None
    error: str = Field(description="Why the attempt failed ('' unless `failed`).")


class CertUpload(BaseModel):
    cert_pem: str = Field(description="The certificate chain, PEM, leaf first.")
    key_pem: str = Field(description="Its private key, PEM, unencrypted. Stored sealed; never returned.")
    names: list[str] | None = Field(None, description="Hostnames to serve it for; default: the certificate's names.")
    env: str | None = Field(None, description="Only edges of this environment get it; null: every edge.")

    def __repr__(self) -> str:  # never the key
        return f"<CertUpload names={self.names} env={self.env}>"


class NodeCerts(BaseModel):
    certs: dict[str, str] = Field(description="Certificate id -> fingerprint, every certificate the node has installed.")


def cert_out(cert, installs: dict[str, str], nodes: dict[str, str], now: float) -> CertOut:
    if cert.issued and cert.not_after is not None and cert.not_after < now:
        status = "expired"
    elif cert.failures:
        status = "failing"
    else:
        status = "valid" if cert.issued else "pending"
    edges = [CertEdge(node_id=nid, name=nodes.get(nid, nid), current=fp == cert.fingerprint)
             for nid, fp in sorted(installs.items())]
    return CertOut(id=cert.id, env=cert.env, source=cert.source, names=list(cert.names), status=status,
                   issuer=cert.issuer, fingerprint=cert.fingerprint, not_before=utc(cert.not_before),
                   not_after=utc(cert.not_after), renew_at=utc(cert.renew_at), failures=cert.failures,
                   last_error=cert.last_error, edges=edges)


def _outs(ctx, certs) -> list[CertOut]:
    import time

    installs = ctx.store.cert_installs()
    nodes = {n.id: n.name for n in ctx.store.list_nodes()}
    return [cert_out(c, installs.get(c.id, {}), nodes, time.time()) for c in certs]


def _existing(ctx, cert_id: str):
    cert = ctx.store.get_cert(cert_id)
    if cert is None:
        raise ApiProblem(404, "not_found", f"there is no certificate {cert_id}; GET /v1/certs lists them")
    return cert


@router.get("/v1/certs", response_model=list[CertOut], summary="List certificates",
            responses=error_responses(401, 403))
def list_certs(ctx: Ctx, _: Annotated[Token, Depends(require("read"))]) -> list[CertOut]:
    return _outs(ctx, ctx.store.list_certs())


@router.get("/v1/certs/{cert_id}", response_model=CertOut, summary="One certificate",
            responses=error_responses(401, 403, 404))
def get_cert(cert_id: CertId, ctx: Ctx, _: Annotated[Token, Depends(require("read"))]) -> CertOut:
    return _outs(ctx, [_existing(ctx, cert_id)])[0]


@router.get("/v1/certs/{cert_id}/history", response_model=list[CertEventOut],
            summary="A certificate's issuances, renewals and failures, newest first",
            responses=error_responses(401, 403, 404))
def cert_history(cert_id: CertId, ctx: Ctx, _: Annotated[Token, Depends(require("read"))],
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[CertEventOut]:
    _existing(ctx, cert_id)
    return [CertEventOut(kind=ev.kind, at=utc(ev.at), issuer=ev.issuer, directory=ev.directory, serial=ev.serial,
                         fingerprint=ev.fingerprint, not_after=utc(ev.not_after), error=ev.error)
            for ev in ctx.store.cert_history(cert_id, limit)]


@router.put("/v1/certs/{cert_id}", response_model=CertOut, summary="Upload or replace a certificate and key",
            responses=error_responses(400, 401, 403, 409, 422))
def put_cert(cert_id: CertId, body: CertUpload, ctx: Ctx, request: Request,
             _: Annotated[Token, Depends(require("deploy"))]) -> CertOut:
    if not CERT_ID.fullmatch(cert_id):
        raise ApiProblem(422, "invalid", f"certificate id {cert_id!r}: letters, digits, '.', '_', '@', '-'")
    try:
        info = check_pair(body.cert_pem, body.key_pem)
    except PemError as exc:
        raise ApiProblem(422, "invalid", str(exc)) from None
    names = sorted({n.lower().rstrip(".") for n in (body.names or info.names)})
    uncovered = [n for n in names if not _covers(info.names, n)]
    if uncovered or not names:
        raise ApiProblem(422, "invalid", f"the certificate ({', '.join(info.names) or 'no names'}) does not cover "
                                         f"{', '.join(uncovered) or 'any name'}")
    existing = ctx.store.get_cert(cert_id)
    if existing is not None and existing.source == "acme":
        raise ApiProblem(409, "conflict", f"{cert_id} is managed by ACME; upload under another id, or turn off tls.acme for its service")
    sealer: Sealer = request.app.state.acme_sealer
    cert = ctx.store.store_cert(cert_id, names=names, cert_pem=body.cert_pem, key_pem=sealer.seal(body.key_pem),
                                fingerprint=info.fingerprint, issuer=info.issuer, not_before=info.not_before,
                                not_after=info.not_after, renew_at=None, source="upload", env=body.env)
    state_changed(ctx)
    return _outs(ctx, [cert])[0]


@router.delete("/v1/certs/{cert_id}", status_code=204, response_class=Response, summary="Delete a certificate",
               responses={204: {"description": "Deleted; edges drop it."}, **error_responses(401, 403, 404)})
def delete_cert(cert_id: CertId, ctx: Ctx, _: Annotated[Token, Depends(require("deploy"))]) -> Response:
    if not ctx.store.delete_cert(cert_id):
        raise ApiProblem(404, "not_found", f"there is no certificate {cert_id}; GET /v1/certs lists them")
    state_changed(ctx)
    return Response(status_code=204)


@router.post("/v1/certs/{cert_id}/renew", status_code=202, response_model=CertOut, summary="Renew now",
             responses=error_responses(401, 403, 404, 409))
def renew_cert(cert_id: CertId, ctx: Ctx, request: Request,
               _: Annotated[Token, Depends(require("deploy"))]) -> CertOut:
    cert = _existing(ctx, cert_id)
    if cert.source != "acme":
        raise ApiProblem(409, "conflict", f"{cert_id} was uploaded; replace it with PUT /v1/certs/{cert_id}")
    cert = ctx.store.update_cert(cert_id, force_renew=True)
    manager = getattr(request.app.state, "acme_manager", None)
    if manager is not None:
        manager.wake()
    return _outs(ctx, [cert])[0]


@router.post("/v1/nodes/{node_id}/certs", status_code=204, response_class=Response, tags=["nodes"],
             summary="Report the certificates a node has installed",
             responses={204: {"description": "Recorded."}, **error_responses(401, 403, 404, 422)})
async def node_certs(node_id: Annotated[str, Path()], body: NodeCerts, ctx: Ctx,
                     _: Annotated[Token, Depends(node_token)]) -> Response:
    await run_in_threadpool(ctx.store.set_node_certs, node_id, body.certs)
    return Response(status_code=204)


def _covers(cert_names, name: str) -> bool:
    if name in cert_names:
        return True
    parent = name.partition(".")[2]
    return bool(parent) and f"*.{parent}" in cert_names
