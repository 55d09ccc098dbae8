"""``Client``: the control plane's REST API as Python methods (sync, httpx).

Rule 1: one method per endpoint, named after what it does; arguments are the
request's fields; return values are the response's JSON (dicts and lists).

Rule 2: every failure is an :class:`ApiError`. An error answer carries the
server's status, code, message and problems; no answer at all is status 0,
code ``"unreachable"`` (or ``"timeout"``), and a message naming the URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from .errors import ApiError
from .pushapi import remember_partials, resumed_range
from .unreachable import unreachable
from .logs import LogsApi
from .watch import WatchApi

__all__ = ["Client"]


def _verify(base_url: str):
    """httpx's ``verify`` for ``base_url``: the system's CAs over HTTPS (as httpx does, with
    ``SSL_CERT_FILE``); over plain HTTP an empty trust store, which refuses any TLS it is
    ever asked for, and costs nothing to make (loading the CA bundle took about 55 ms of
    every command's start, for a control plane on plain HTTP)."""
    if not base_url.lower().startswith("http://"):
        return True
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _seg(value: object) -> str:
    """One path segment, escaped."""
    return quote(str(value), safe="")


class Client(LogsApi, WatchApi):  # logs and analytics: client/logs.py; health, probe: client/watch.py
    """A client of the control plane at ``base_url`` (e.g. ``http://127.0.0.1:7700``)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"User-Agent": "owncdn-client", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=_verify(self.base_url))
        self.partial: dict[str, int] = {}  # missing_blobs: bytes kept of uploads that broke
        self.resumed: list[int] = []  # put_blob: the bytes each resumed upload did not send again

    def __repr__(self) -> str:
        return f"<Client {self.base_url}>"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
              timeout: float | None = None, content: Any = None, headers: dict[str, str] | None = None) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=params or None, content=content,
                                          headers=headers, timeout=timeout if timeout is not None else self.timeout)
        except httpx.TimeoutException as exc:
            raise ApiError(0, "timeout", f"the control plane at {self.base_url} did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from None
        if response.is_error:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, "bad_response", f"{self.base_url}{path} answered {response.status_code} with a body that is not JSON; is this an owncdn control plane?") from None

    # -- health and tokens -------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"ok": true}`` when the API answers."""
        return self._call("GET", "/v1/health")

    def create_token(self, name: str, scopes: list[str] | set[str] | tuple[str, ...]) -> dict[str, Any]:
        """A new token ``{id, name, scopes, token}``; the token text is shown only here."""
        return self._call("POST", "/v1/tokens", json={"name": name, "scopes": sorted(scopes)})

    def list_tokens(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/tokens")

    def revoke_token(self, id: str) -> None:
        self._call("DELETE", f"/v1/tokens/{_seg(id)}")

    # -- versions and services ---------------------------------------------------------

    def add_version(self, env: str, source: str, comment: str = "", filename: str = "cdn.yaml") -> dict[str, Any]:
        """Deploy cdn.yaml text; ``ApiError`` 422 with ``problems`` if it is invalid."""
        return self._call("POST", f"/v1/envs/{_seg(env)}/versions", json={"source": source, "comment": comment, "filename": filename})

    def list_versions(self, env: str, limit: int = 50) -> list[dict[str, Any]]:
        """Versions of ``env``, newest first."""
        return self._call("GET", f"/v1/envs/{_seg(env)}/versions", params={"limit": limit})

    def get_version(self, env: str, n: int) -> dict[str, Any]:
        """One version, with its ``source`` and ``snapshot``."""
        return self._call("GET", f"/v1/envs/{_seg(env)}/versions/{int(n)}")

    def rollback(self, env: str, to: int) -> dict[str, Any]:
        """A new version with the source of version ``to``."""
        return self._call("POST", f"/v1/envs/{_seg(env)}/rollback", json={"to": to})

    def services(self, env: str) -> dict[str, Any]:
        """``{env, version, services: [{name, hostnames, origins}]}`` of the latest version."""
        return self._call("GET", f"/v1/envs/{_seg(env)}/services")

    def create_service(self, env: str, origin: str, name: str | None = None) -> dict[str, Any]:
        """Put ``origin`` behind the CDN: ``{service, cname, version}``."""
        body: dict[str, Any] = {"origin": origin}
        if name is not None:
            body["name"] = name
        return self._call("POST", f"/v1/envs/{_seg(env)}/services", json=body)

    def locations(self, env: str) -> dict[str, Any]:
        """``{env, version, locations: [{name, city, ..., declared, nodes}]}``."""
        return self._call("GET", f"/v1/envs/{_seg(env)}/locations")

    def status(self, env: str) -> dict[str, Any]:
        """``{env, latest_version, nodes: [...]}`` with each node's version and drift."""
        return self._call("GET", f"/v1/envs/{_seg(env)}/status")

    def edge_health(self, env: str | None = None) -> list[dict[str, Any]]:
        """Every edge (of ``env``) as the health monitor judges it: ``[{name, location,
        address, healthy, successes, failures, last_check, last_error, ...}]``."""
        return self._call("GET", "/v1/health/edges", params={"env": env})

    # -- nodes -------------------------------------------------------------------------

    def register_node(self, name: str, kind: str, location: str, env: str, address: str) -> dict[str, Any]:
        """Register with the bootstrap token: ``{node_id, token}``."""
        body = {"name": name, "kind": kind, "location": location, "env": env, "address": address}
        return self._call("POST", "/v1/nodes/register", json=body)

    def nodes(self, env: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/nodes", params={"env": env})

    def delete_node(self, node_id: str) -> None:
        self._call("DELETE", f"/v1/nodes/{_seg(node_id)}")

    def report(self, node_id: str, version: int, status: str, reason: str = "") -> dict[str, Any]:
        """Report ``status`` ``"applied"`` or ``"rejected"`` for ``version``; returns the node."""
        body = {"version": version, "status": status, "reason": reason}
        return self._call("POST", f"/v1/nodes/{_seg(node_id)}/report", json=body)

    def ack_purge(self, node_id: str, purge_id: int, ms: float, removed: int) -> dict[str, Any]:
        return self._call("POST", f"/v1/nodes/{_seg(node_id)}/purges/{int(purge_id)}/ack", json={"ms": ms, "removed": removed})

    # -- purges ------------------------------------------------------------------------

    def purge(self, env: str, *, url: str | None = None, prefix: str | None = None, tag: str | None = None,
              all: bool = False, soft: bool = False, service: str | None = None,
              wait: float | None = None) -> dict[str, Any]:
        """Purge one of ``url`` / ``prefix`` / ``tag`` / ``all``. With ``wait``
        (seconds, at most 60) the answer comes when every node in contact has
        acked (``complete``) or the time is up."""
        body: dict[str, Any] = {"soft": soft}
        for key, value in (("url", url), ("prefix", prefix), ("tag", tag), ("service", service)):
            if value is not None:
                body[key] = value
        if all:
            body["all"] = True
        timeout = None if wait is None else self.timeout + wait
        return self._call("POST", f"/v1/envs/{_seg(env)}/purges", json=body, params={"wait": wait}, timeout=timeout)

    def get_purge(self, env: str, id: int) -> dict[str, Any]:
        """A purge with ``acked`` and ``pending`` nodes."""
        return self._call("GET", f"/v1/envs/{_seg(env)}/purges/{int(id)}")

    # -- push: blobs and releases --------------------------------------------------------

    def missing_blobs(self, hashes: list[str]) -> list[str]:
        """Which of these blob hashes the control plane does not hold yet; ``partial``
        then holds ``{name: bytes}`` of those it kept a part of from an upload that
        broke (``pushapi`` Rule 6)."""
        hashes = list(hashes)
        answer = self._call("POST", "/v1/blobs/missing", json={"hashes": hashes})
        remember_partials(self.partial, hashes, answer)
        return answer["missing"]

    def put_blob(self, sha256: str, content: bytes | Any, size: int | None = None, offset: int = 0) -> dict[str, Any]:
        """Upload one blob: ``content`` is bytes or an iterator of bytes (give ``size``
        with an iterator). ``ApiError`` 400 ``hash_mismatch`` if the bytes do not hash
        to ``sha256``. With ``offset`` (and the blob's ``size``), ``content`` is the
        blob's bytes from there: the rest of an upload that broke (409 ``partial_gone``
        when the control plane holds fewer than ``offset`` bytes of it)."""
        headers = {"Content-Type": "application/octet-stream"}
        if offset:
            headers["Content-Range"] = resumed_range(offset, size)
            headers["Content-Length"] = str(size - offset)
        elif size is not None:
            headers["Content-Length"] = str(size)
        stored = self._call("PUT", f"/v1/blobs/{_seg(sha256)}", content=content, headers=headers)
        if offset:
            self.resumed.append(offset)
        return stored

    def put_bundle(self, content: bytes | Any, size: int | None = None) -> dict[str, Any]:
        """Upload many blobs in one body: records ``<sha256> <size>\\n<bytes>``
        (``owncdn.core.content.bundle``); ``{stored: [{sha256, size}], bytes}``."""
        headers = {"Content-Type": "application/x-owncdn-bundle"}
        if size is not None:
            headers["Content-Length"] = str(size)
        return self._call("POST", "/v1/blobs/bundle", content=content, headers=headers)

    def fetch_blobs(self, hashes: list[str]) -> Iterator[tuple[str, bytes]]:
        """``(sha256, bytes)`` of each blob asked for, once, from one bundle download, in
        the order the control plane sends them (as they lie in its store)."""
        from owncdn.core.content.bundle import BlobData, BlobEnd, BlobStart, BundleReader

        reader, sha, data = BundleReader(), "", bytearray()
        try:
            with self._http.stream("POST", "/v1/blobs/fetch", json={"hashes": list(hashes)}) as response:
                if response.is_error:
                    response.read()
                    raise _error_from(response)
                for chunk in response.iter_bytes():
                    for event in reader.feed(chunk):
                        if isinstance(event, BlobStart):
                            sha, data = event.sha256, bytearray()
                        elif isinstance(event, BlobData):
                            data += event.data
                        elif isinstance(event, BlobEnd):
                            yield sha, bytes(data)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from None
        reader.close()

    def get_blob(self, sha256: str, start: int = 0) -> bytes:
        """A blob's bytes (from offset ``start``)."""
        headers = {"Range": f"bytes={int(start)}-"} if start else {}
        try:
            response = self._http.get(f"/v1/blobs/{_seg(sha256)}", headers=headers)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from None
        if response.is_error:
            raise _error_from(response)
        return response.content

    def create_release(self, env: str, service: str, manifest: dict[str, Any], comment: str = "") -> dict[str, Any]:
        """A new release (current at once): ``{service, env, number, id, files, bytes}``;
        ``ApiError`` 409 ``missing_blobs`` with the hashes in ``problems``. ``comment``: why."""
        if hasattr(manifest, "to_json"):  # a Manifest
            manifest = manifest.to_json()
        params = {"env": env, "comment": comment} if comment else {"env": env}
        return self._call("POST", f"/v1/services/{_seg(service)}/releases", params=params,
                          json={"manifest": manifest}, timeout=max(self.timeout, 60))

    def create_release_with_blobs(self, env: str, service: str, content: bytes | Any,
                                  size: int | None = None, base: str | None = None,
                                  comment: str = "") -> dict[str, Any]:
        """A new release and its new blobs in one body: a bundle whose first record is the
        manifest's canonical encoding named by its id (``POST .../releases/bundle``), or
        with ``base`` its changes from that manifest."""
        headers = {"Content-Type": "application/x-owncdn-bundle"}
        if size is not None:
            headers["Content-Length"] = str(size)
        params = {"env": env} if base is None else {"env": env, "base": base}
        if comment:
            params["comment"] = comment
        return self._call("POST", f"/v1/services/{_seg(service)}/releases/bundle", params=params,
                          content=content, headers=headers, timeout=max(self.timeout, 60))

    def release_status(self, env: str, service: str, number: int, wait: float | None = None) -> dict[str, Any]:
        """``{number, current, serving, failed, pending, complete}``: which edges serve
        release ``number``; with ``wait`` (seconds), answered once no edge in contact is
        left to report, or when the time is up."""
        timeout = None if wait is None else self.timeout + wait
        return self._call("GET", f"/v1/services/{_seg(service)}/releases/{int(number)}/status",
                          params={"env": env, "wait": wait}, timeout=timeout)

    def releases(self, env: str, service: str, limit: int = 50, current: bool = False) -> list[dict[str, Any]]:
        """Releases newest first: ``[{number, id, files, bytes, created, current, nodes}]``;
        with ``current``, the current one alone (however old), or none."""
        params: dict[str, Any] = {"env": env, "limit": limit}
        if current:
            params["current"] = "true"
        return self._call("GET", f"/v1/services/{_seg(service)}/releases", params=params)

    def release_manifest(self, env: str, service: str, number: int) -> dict[str, Any]:
        """Release ``number``'s manifest (``{"files": {path: entry}}``)."""
        return self._call("GET", f"/v1/services/{_seg(service)}/releases/{int(number)}/manifest", params={"env": env})

    def set_release_comment(self, env: str, service: str, number: int, comment: str) -> dict[str, Any]:
        """Replace release ``number``'s comment ("" removes it): the release as listed."""
        return self._call("PUT", f"/v1/services/{_seg(service)}/releases/{int(number)}/comment",
                          params={"env": env}, json={"comment": comment})

    def activate_release(self, env: str, service: str, number: int) -> dict[str, Any]:
        """Make release ``number`` current again (rollback or roll forward)."""
        return self._call("POST", f"/v1/services/{_seg(service)}/releases/{int(number)}/activate", params={"env": env})

    def collect_blobs(self, dry_run: bool = False) -> dict[str, Any]:
        """Blob GC now (``admin``): ``{deleted, freed_bytes, stored, referenced, young, ...}``."""
        return self._call("POST", "/v1/blobs/gc", params={"dry_run": "true" if dry_run else "false"})

    def report_release(self, node_id: str, service: str, number: int, status: str, reason: str = "") -> dict[str, Any]:
        """A node's report: ``status`` ``"serving"`` or ``"failed"`` for release ``number``."""
        body = {"service": service, "number": number, "status": status, "reason": reason}
        return self._call("POST", f"/v1/nodes/{_seg(node_id)}/releases", json=body)

    # -- certificates ------------------------------------------------------------------

    def certs(self) -> list[dict[str, Any]]:
        """Every certificate: ``[{id, names, status, issuer, not_after, edges, ...}]`` (never a key)."""
        return self._call("GET", "/v1/certs")

    def cert(self, id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/certs/{_seg(id)}")

    def put_cert(self, id: str, cert_pem: str, key_pem: str, names: list[str] | None = None,
                 env: str | None = None) -> dict[str, Any]:
        """Upload or replace a certificate and its key (checked: the key matches, names are covered)."""
        return self._call("PUT", f"/v1/certs/{_seg(id)}",
                          json={"cert_pem": cert_pem, "key_pem": key_pem, "names": names, "env": env})

    def delete_cert(self, id: str) -> None:
        self._call("DELETE", f"/v1/certs/{_seg(id)}")

    def renew_cert(self, id: str) -> dict[str, Any]:
        """Ask for a renewal now (ACME certificates); the manager orders it in the background."""
        return self._call("POST", f"/v1/certs/{_seg(id)}/renew")

    def report_certs(self, node_id: str, certs: dict[str, str]) -> None:
        """A node's installed certificates: id -> fingerprint."""
        self._call("POST", f"/v1/nodes/{_seg(node_id)}/certs", json={"certs": certs})


def _error_from(response: httpx.Response) -> ApiError:
    status = response.status_code
    try:
        error = response.json()["error"]
        return ApiError(status, str(error["code"]), str(error["message"]), error.get("problems"))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200]
        return ApiError(status, "http_error", f"{response.request.method} {response.request.url} answered HTTP {status}" + (f": {text}" if text else ""))
