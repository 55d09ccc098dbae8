"""Purge at the edge: by URL, URL prefix, tag, or everything; hard or soft.

A purge spec is what the control plane sends (and `owncdn purge` builds):
`{"url": "https://host/path?q"}`, `{"prefix": "https://host/img/"}` or, with a
service, `{"prefix": "/img/", "service": "blog"}`, `{"tag": "product-42"}`,
`{"all": true}`; any of them may add `"service"` to limit it and `"soft": true` to
mark objects stale instead of removing them.

Tags come from the origin's `Cache-Tag` (comma-separated) and `Surrogate-Key`
(space-separated) response fields, read when an object is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from owncdn.core.http.headers import Headers

if TYPE_CHECKING:
    from owncdn.edge.app import Edge


class PurgeError(ValueError):
    pass


def cache_tags(headers: Headers) -> tuple[str, ...]:
    tags = headers.get_list("cache-tag")
    for line in headers.get_all("surrogate-key"):
        tags.extend(line.split())
    return tuple(dict.fromkeys(t for t in tags if t))


def run_purge(edge: "Edge", spec: dict) -> int:
    """Apply one purge spec to every tier; returns how many cached keys it touched."""
    touched: set[str] = set()
    for tier in edge.tiers:
        keys = _select(edge, tier, spec)
        touched |= keys
        for key in keys:
            if spec.get("soft"):
                tier.soften(key)
            else:
                tier.remove_key(key)
    edge.metrics.purged(spec, len(touched))
    return len(touched)


def _select(edge: "Edge", tier, spec: dict) -> set[str]:
    service = spec.get("service")
    if service is not None and service not in edge.services:
        return set()
    if spec.get("all"):
        return tier.keys_for_uri_prefix(f"{service}|" if service else "")
    if "tag" in spec:
        keys = tier.keys_for_tag(str(spec["tag"]))
        return keys if service is None else {k for k in keys if k.startswith(service + " ")}
    if "url" in spec:
        return tier.keys_for_uri(_uri(edge, str(spec["url"]), service))
    if "prefix" in spec:
        prefix = str(spec["prefix"])
        if not prefix.startswith("/"):
            return tier.keys_for_uri_prefix(_uri(edge, prefix, service))
        if service is None:
            raise PurgeError(f"a path prefix ({prefix!r}) needs a service; or give a full URL")
        return {k for uri, keys in tier.by_uri.items()
                if uri.startswith(service + "|") and uri.split("|", 2)[2].startswith(prefix) for k in keys}
    raise PurgeError("a purge needs one of url, prefix, tag or all")


def _uri(edge: "Edge", url: str, service: str | None) -> str:
    """The memory store's URI index form (`service|host|target`) of a full URL."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise PurgeError(f"not a full URL: {url!r} (a path needs a service and 'prefix')")
    host = parts.hostname.lower()
    svc = edge.route(host)
    if svc is None or (service is not None and svc.name != service):
        return "\0"  # no service of this edge serves that host: nothing matches
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{svc.name}|{host}|{target}"
