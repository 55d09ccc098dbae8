"""Redirect services (download mirrors) at the edge; ``core.routing.redirect`` decides.

Rules:

1. Only requests for one of the service's own hostnames are redirected. A request
   for a location's hostname (``locations[].hostname``, which the config routes to
   the redirect service) goes on as a normal pull: cached, from the origins.
2. On the service's hostnames, GET / HEAD of ``redirect.mirror_list`` is the mirror
   list page (HTML, or JSON for ``Accept: application/json``); any other GET / HEAD
   is a redirect to the nearest location's hostname; other methods get 405 with
   ``Allow: GET, HEAD`` (a mirror has nothing to post to).
3. The visitor is the peer, or from X-Forwarded-For when the peer is in
   ``edge.trusted_proxies`` (the same check forwarding uses).
4. The GeoIP database is ``--geoip``, else ``edge.geoip``, else DB-IP City Lite
   (``dns/geodefault.py``); it is opened only when a redirect service exists, once,
   and kept across configs naming the same file. Without any, every visitor gets
   the fallback location.
5. Each response is made up by the edge and logged like any other, with
   X-Cache ``REDIRECT``; the page and the redirect are ``Cache-Control: private``.
"""

from __future__ import annotations

from dataclasses import dataclass

from owncdn.core.config.hostnames import host_without_port
from owncdn.core.config.redirects import used_locations
from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.routing.mirrorlist import mirror_list_html, mirror_list_json, prefers_json
from owncdn.core.routing.redirect import (
    Mirror,
    Visitor,
    locate_visitor,
    plan_redirect,
    rank_mirrors,
    request_scheme,
)
from owncdn.dns.geo import GeoDatabase
from owncdn.dns.geodefault import geoip_path, open_database
from owncdn.edge.responses import header_block, status_line


@dataclass(frozen=True)
class Redirector:
    """One redirect service as the edge runs it."""

    name: str
    hostnames: frozenset[str]
    mirrors: tuple[Mirror, ...]
    fallback: str | None
    status: int
    scheme: str
    max_age: float
    mirror_list: str | None

    @classmethod
    def from_config(cls, svc, locations) -> Redirector:
        settings = svc.redirect
        mirrors = tuple(Mirror(loc.name, loc.hostname, loc.lat, loc.lon, loc.city, loc.country)
                        for loc in used_locations(svc, locations))
        return cls(svc.name, frozenset(svc.hostnames), mirrors, settings.fallback, settings.status,
                   settings.scheme, settings.max_age, settings.mirror_list)

    def serves(self, host: str) -> bool:
        """Rule 1: the request is for one of the service's own hostnames (exact, or
        the wildcard one label up)."""
        name = host_without_port(host)
        if name in self.hostnames:
            return True
        _, dot, parent = name.partition(".")
        return bool(dot) and f"*.{parent}" in self.hostnames


class Redirects:
    """The redirect services of one config and the GeoIP database they share."""

    def __init__(self, by_service: dict[str, Redirector], geo: GeoDatabase | None) -> None:
        self.by_service = by_service
        self.geo = geo

    @classmethod
    def from_config(cls, config, geoip: str | None = None, previous: Redirects | None = None) -> Redirects:
        by_service = {svc.name: Redirector.from_config(svc, config.locations)
                      for svc in config.services if svc.mode == "redirect"}
        if not by_service:
            return cls({}, previous.geo if previous is not None else None)
        path = geoip_path(geoip or config.edge.geoip)  # Rule 4
        geo = previous.geo if previous is not None else None
        if path is None:
            geo = None
        elif geo is None or geo.path != str(path):
            geo = open_database(path)
        return cls(by_service, geo)

    def __contains__(self, service: str) -> bool:
        return service in self.by_service

    def __repr__(self) -> str:
        return f"<Redirects {sorted(self.by_service)} geo={self.geo!r}>"

    def close(self) -> None:
        if self.geo is not None:
            self.geo.close()

    # -- the hook -------------------------------------------------------------------
    def answer(self, edge, req) -> bool:
        """Answer ``req`` if it is for a redirect service's own hostname (Rules 1-2);
        False lets the edge serve it as a normal pull."""
        redirector = self.by_service[req.service]
        if not redirector.serves(req.host):
            return False
        req.cache = "REDIRECT"
        if req.method not in ("GET", "HEAD"):
            edge.reply(req, 405, f"{redirector.name} redirects downloads to its mirrors: use GET or HEAD",
                       b"Allow: GET, HEAD\r\n")
            return True
        visitor = self.visitor(edge, req)
        path = req.target.partition("?")[0]
        if redirector.mirror_list is not None and path == redirector.mirror_list:
            self._mirror_list(edge, req, redirector, visitor)
        else:
            self._redirect(edge, req, redirector, visitor)
        return True

    def visitor(self, edge, req) -> Visitor:
        """Rule 3, and the visitor's position in the database."""
        return locate_visitor(req.conn.client_addr, req.headers.get_all("x-forwarded-for"), edge.trusted,
                              self._locate)

    def _locate(self, address: str):
        return self.geo.locate(address)[0] if self.geo is not None else None

    def _redirect(self, edge, req, redirector: Redirector, visitor: Visitor) -> None:
        scheme = redirector.scheme
        if scheme == "request":
            scheme = request_scheme(getattr(req.conn, "scheme", "http") == "https",
                                    req.headers.get("x-forwarded-proto"), edge.trusted(req.conn.client_addr))
        decision = plan_redirect(redirector.mirrors, visitor, scheme=scheme, request_host=req.host,
                                 target=req.target, max_age=redirector.max_age, fallback=redirector.fallback)
        body = f"{redirector.name}: the nearest mirror is {decision.mirror.name}: {decision.location}\n".encode()
        _respond(edge, req, redirector.status, decision.fields, "text/plain; charset=utf-8", body)

    def _mirror_list(self, edge, req, redirector: Redirector, visitor: Visitor) -> None:
        nearest = rank_mirrors(redirector.mirrors, visitor.position, redirector.fallback)[0]
        region = self._region(visitor.address)
        if prefers_json(req.headers.get("accept")):
            body = mirror_list_json(redirector.name, redirector.mirrors, visitor, nearest, region)
            ctype = "application/json"
        else:
            scheme = redirector.scheme if redirector.scheme != "request" else getattr(req.conn, "scheme", "http")
            body = mirror_list_html(redirector.name, redirector.mirrors, visitor, nearest, region, scheme)
            ctype = "text/html; charset=utf-8"
        vary = "Accept, X-Forwarded-For" if visitor.via_forwarded_for else "Accept"
        _respond(edge, req, 200, (("cache-control", "private, no-cache"), ("vary", vary)), ctype, body)

    def _region(self, address: str) -> str | None:
        if self.geo is None:
            return None
        try:
            place = self.geo.place(address)
        except ValueError:
            return None
        words = [place[key] for key in ("city", "country") if key in place]
        return ", ".join(words) or place.get("continent")


def _respond(edge, req, status: int, fields, ctype: str, body: bytes) -> None:
    headers = Headers(fields)
    headers.set("content-type", ctype)
    headers.set("content-length", str(len(body)))
    headers.set("date", format_http_date(edge.clock.time()))
    headers.set("via", f"1.1 {edge.via_name}")
    head = status_line(status) + header_block(headers) + edge.static_fields
    edge._send(req, status, head, b"", body)

