"""The CDN zone as an immutable value: static records plus routed names.

Rule 1: a ``Zone`` never changes after it is built.  ``set_txt`` and
``remove_txt`` return a new zone; a server swaps the whole value at once, so a
query never sees half an update.

Rule 2: nothing here does I/O.  Routed names (``blog.cdn.test.``) get their
A/AAAA answers from a ``route`` callback chosen by the caller, called once per
(uncached) query with the client's address and EDNS client subnet.

Rule 3: names are compared as dnspython ``Name`` objects (case-insensitive);
record data is parsed at build time, so a bad record fails ``Zone(...)``, not a
query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Iterable

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

STATIC_TYPES = frozenset({"SOA", "NS", "A", "AAAA", "CNAME", "TXT", "CAA"})


@dataclass(frozen=True)
class ClientSubnet:
    """The EDNS client subnet of a query (RFC 7871), as the route callback sees it."""

    address: str
    source_prefix: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4


# route(name, family, client_address, ecs) -> (addresses, ttl, scope_prefix)
RouteResult = tuple[list[str], int, "int | None"]
RouteFn = Callable[[str, int, str, "ClientSubnet | None"], RouteResult]
# route_key(client_address, ecs) -> anything hashable: two clients with the same
# key get the same routed answer, so the wire fast path may share cached bytes.
RouteKeyFn = Callable[[str, "ClientSubnet | None"], Hashable]


@dataclass(frozen=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int = 3600
    retry: int = 600
    expire: int = 1209600
    minimum: int = 60
    ttl: int = 3600


@dataclass(frozen=True)
class Record:
    """One static record: ``Record("www.cdn.test.", "CNAME", 300, "blog.cdn.test.")``."""

    name: str
    rtype: str
    ttl: int
    rdata: str


@dataclass(frozen=True)
class Routed:
    """The answer for a routed name, or None when the name is not routed."""

    rrset: dns.rrset.RRset | None
    scope_prefix: int | None


def _no_route(name: str, family: int, client: str, ecs: ClientSubnet | None) -> RouteResult:
    return [], 0, None


class ZoneError(ValueError):
    """A zone built from inconsistent data; the message names the record."""


class Zone:
    """An authoritative zone: ``origin``, SOA, NS set, static records, routed names."""

    def __init__(
        self,
        origin: str,
        soa: Soa,
        ns: Iterable[str],
        records: Iterable[Record] = (),
        routed: Iterable[str] = (),
        route: RouteFn = _no_route,
        route_key: RouteKeyFn | None = None,
        ns_ttl: int = 3600,
    ) -> None:
        self.origin = dns.name.from_text(origin)
        self.soa = soa
        self.ns = tuple(ns)
        self.records = tuple(records)
        self.routed_names = tuple(routed)
        self.route = route
        self.route_key = route_key
        self.ns_ttl = ns_ttl
        self._rrsets: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._routed = frozenset(self._in_zone(n, "routed name") for n in self.routed_names)
        self._add(self._soa_record())
        for target in self.ns:
            self._add(Record(origin, "NS", ns_ttl, target))
        for record in self.records:
            self._add(record)
        self._check_cnames()
        self._names = self._all_names()

    def __repr__(self) -> str:
        return (
            f"<Zone {self.origin} serial={self.soa.serial} "
            f"names={len(self._names)} routed={len(self._routed)}>"
        )

    # -- building ---------------------------------------------------------

    def _soa_record(self) -> Record:
        s = self.soa
        text = f"{s.mname} {s.rname} {s.serial} {s.refresh} {s.retry} {s.expire} {s.minimum}"
        return Record(self.origin.to_text(), "SOA", s.ttl, text)

    def _in_zone(self, text: str, what: str) -> dns.name.Name:
        name = dns.name.from_text(text)
        if not name.is_subdomain(self.origin):
            raise ZoneError(f"{what} {text!r} is outside the zone {self.origin}")
        return name

    def _add(self, record: Record) -> None:
        rtype = record.rtype.upper()
        if rtype not in STATIC_TYPES:
            raise ZoneError(f"record {record.name} {record.rtype}: type not supported")
        name = self._in_zone(record.name, "record")
        try:
            rrset = dns.rrset.from_text(name, record.ttl, "IN", rtype, record.rdata)
        except Exception as exc:
            raise ZoneError(f"record {record.name} {rtype} {record.rdata!r}: {exc}") from exc
        by_type = self._rrsets.setdefault(name, {})
        old = by_type.get(rrset.rdtype)
        if old is not None:
            rrset.update(old)
            rrset.update_ttl(min(old.ttl, record.ttl))
        by_type[rrset.rdtype] = rrset

    def _check_cnames(self) -> None:
        for name, by_type in self._rrsets.items():
            if dns.rdatatype.CNAME in by_type and (len(by_type) > 1 or name in self._routed):
                raise ZoneError(f"{name}: a CNAME cannot coexist with other data")

    def _all_names(self) -> frozenset[dns.name.Name]:
        names: set[dns.name.Name] = set()
        for name in list(self._rrsets) + list(self._routed):
            while name != self.origin and name not in names:
                names.add(name)
                name = name.parent()
        names.add(self.origin)
        return frozenset(names)

    # -- copy-on-write updates --------------------------------------------

    def set_txt(self, name: str, values: Iterable[str]) -> Zone:
        """A new zone whose TXT set at ``name`` is exactly ``values`` (ACME DNS-01)."""
        kept = self._without_txt(name)
        added = [Record(name, "TXT", 60, _quote(v)) for v in values]
        return self._replace(kept + added)

    def remove_txt(self, name: str) -> Zone:
        """A new zone without any TXT record at ``name``."""
        return self._replace(self._without_txt(name))

    def _without_txt(self, name: str) -> list[Record]:
        target = dns.name.from_text(name)
        return [
            r for r in self.records
            if not (r.rtype.upper() == "TXT" and dns.name.from_text(r.name) == target)
        ]

    def _replace(self, records: list[Record]) -> Zone:
        return Zone(
            self.origin.to_text(), self.soa, self.ns, records, self.routed_names,
            self.route, self.route_key, self.ns_ttl,
        )

    # -- queries ------------------------------------------------------------

    def contains(self, name: dns.name.Name) -> bool:
        return name.is_subdomain(self.origin)

    def exists(self, name: dns.name.Name) -> bool:
        return name in self._names

    def is_routed(self, name: dns.name.Name) -> bool:
        return name in self._routed

    def get(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        by_type = self._rrsets.get(name)
        return None if by_type is None else by_type.get(rdtype)

    def types_at(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        return list(self._rrsets.get(name, {}).values())

    def negative_soa(self) -> dns.rrset.RRset:
        """The SOA for the authority section, its TTL capped by MINIMUM (RFC 2308)."""
        soa = self._rrsets[self.origin][dns.rdatatype.SOA]
        capped = dns.rrset.RRset(self.origin, dns.rdataclass.IN, dns.rdatatype.SOA)
        capped.update(soa)
        capped.update_ttl(min(soa.ttl, self.soa.minimum))
        return capped

    def resolve_routed(
        self, name: dns.name.Name, rdtype: int, client: str, ecs: ClientSubnet | None
    ) -> Routed:
        """Ask the route callback for the A (family 4) or AAAA (family 6) set of ``name``."""
        family = 4 if rdtype == dns.rdatatype.A else 6
        addresses, ttl, scope = self.route(name.to_text(), family, client, ecs)
        if not addresses:
            return Routed(None, scope)
        rdtype_text = "A" if family == 4 else "AAAA"
        return Routed(dns.rrset.from_text_list(name, ttl, "IN", rdtype_text, addresses), scope)

    def cache_key(self, client: str, ecs: ClientSubnet | None) -> Hashable:
        """Clients with equal keys get equal answers (the client address by default)."""
        if not self._routed:
            return None
        if self.route_key is None:
            return (client, ecs)
        return self.route_key(client, ecs)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
