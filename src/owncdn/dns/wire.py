"""Answer DNS queries for a ``Zone``: bytes in, bytes out (or None to drop).

Rule 1: ``answer()`` never raises.  A packet without a readable header, or one
with QR set, is dropped (None); a malformed packet with a header gets FORMERR;
an internal error gets SERVFAIL.

Rule 2: the slow path parses and builds every message with dnspython and is the
reference.  ``Answerer`` adds a fast path for plain queries (one question,
class IN, no OPT or an OPT without options): it parses the question by hand
and returns a cached copy of the slow path's answer with the query's id and
question bytes patched in, so both paths give the same bytes.

Rule 3: a cached answer is keyed by (question lowercased, query flags, payload
size class, transport, the zone's route key for the client).  A new zone
object empties the cache.
"""

from __future__ import annotations

import logging
import socket
from functools import lru_cache
from typing import Callable, Hashable

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from owncdn.dns.zone import ClientSubnet, Zone

log = logging.getLogger(__name__)

OUR_PAYLOAD = 1232  # RFC 6891 payload we advertise (DNS flag day 2020)
MAX_CNAME_CHAIN = 8
ANY_PREFERENCE = (
    dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.TXT,
    dns.rdatatype.CAA, dns.rdatatype.NS, dns.rdatatype.SOA,
)
_QR = 0x80
_HEADER = 12


# -- slow path: dnspython ---------------------------------------------------

def answer(zone: Zone, data: bytes, client: str, udp: bool = True) -> bytes | None:
    """The response to ``data`` from ``client`` (an IP address), or None to drop it."""
    try:
        return _answer(zone, data, client, udp)
    except Exception:
        log.exception("dns: internal error answering a query from %s", client)
        return _header_only(data, dns.rcode.SERVFAIL)


def _answer(zone: Zone, data: bytes, client: str, udp: bool) -> bytes | None:
    if len(data) < _HEADER or data[2] & _QR:
        return None
    if (data[2] >> 3) & 0x0F != dns.opcode.QUERY:
        return _header_only(data, dns.rcode.NOTIMP)
    try:
        query = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return _header_only(data, dns.rcode.FORMERR)
    if len(query.question) != 1:
        return _header_only(data, dns.rcode.FORMERR)
    response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)
        return _render(response, query, udp)
    ecs = _client_subnet(query)
    if ecs is False:
        return _header_only(data, dns.rcode.FORMERR)
    _fill(zone, query, response, client, ecs or None)
    return _render(response, query, udp)


def _header_only(data: bytes, rcode: int) -> bytes | None:
    """A bare header: same id, QR set, opcode and RD copied, no sections."""
    if len(data) < _HEADER:
        return None
    flags = _QR | (data[2] & 0x79)  # opcode + RD
    return data[:2] + bytes([flags, rcode & 0x0F]) + bytes(8)


def _client_subnet(query: dns.message.Message) -> dns.edns.ECSOption | None | bool:
    """The query's ECS option, None without one, False when it is impossible (FORMERR)."""
    for option in query.options:
        if isinstance(option, dns.edns.ECSOption):
            return option if _ecs_is_valid(option) else False
    return None


def _ecs_is_valid(option: dns.edns.ECSOption) -> bool:
    family, width = (socket.AF_INET6, 128) if option.family == 2 else (socket.AF_INET, 32)
    if option.srclen > width:
        return False
    bits = int.from_bytes(socket.inet_pton(family, option.address), "big")
    return bits & ((1 << (width - option.srclen)) - 1) == 0  # RFC 7871 section 6


def _fill(zone, query, response, client, ecs) -> None:
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN or not zone.contains(question.name):
        response.set_rcode(dns.rcode.REFUSED)
        return
    if question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        response.set_rcode(dns.rcode.REFUSED)
        return
    response.flags |= dns.flags.AA
    subnet = ClientSubnet(ecs.address, ecs.srclen) if ecs is not None else None
    lookup = _Lookup(zone, client, subnet)
    rrsets, rcode, answered = lookup.run(question.name, question.rdtype)
    response.answer.extend(rrsets)
    response.set_rcode(rcode)
    if not answered:
        response.authority.append(zone.negative_soa())
    if ecs is not None:
        scope = lookup.scope or 0
        option = dns.edns.ECSOption(ecs.address, ecs.srclen, scope)
        response.use_edns(0, 0, OUR_PAYLOAD, query.payload, options=[option])


class _Lookup:
    """One resolution inside the zone: CNAME chasing, routed names, minimal ANY."""

    def __init__(self, zone: Zone, client: str, ecs: ClientSubnet | None) -> None:
        self.zone, self.client, self.ecs = zone, client, ecs
        self.scope: int | None = None

    def run(self, name: dns.name.Name, rdtype: int):
        """(answer rrsets, rcode, whether the chain ended in a positive answer)."""
        chain: list[dns.rrset.RRset] = []
        while True:
            if not self.zone.contains(name):
                return chain, dns.rcode.NOERROR, True  # CNAME out of the zone
            if not self.zone.exists(name):
                return chain, dns.rcode.NXDOMAIN, False
            found = self._find(name, rdtype)
            if found is not None:
                return chain + [found], dns.rcode.NOERROR, True
            cname = self.zone.get(name, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME or len(chain) >= MAX_CNAME_CHAIN:
                return chain, dns.rcode.NOERROR, False
            chain.append(cname)
            name = cname[0].target

    def _find(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        if rdtype == dns.rdatatype.ANY:
            return self._minimal_any(name)
        if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and self.zone.is_routed(name):
            return self._routed(name, rdtype)
        return self.zone.get(name, rdtype)

    def _routed(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        routed = self.zone.resolve_routed(name, rdtype, self.client, self.ecs)
        self.scope = routed.scope_prefix
        return routed.rrset

    def _minimal_any(self, name: dns.name.Name) -> dns.rrset.RRset | None:
        """RFC 8482: answer ANY with one RRset, the routed A set first."""
        if self.zone.is_routed(name):
            found = self._routed(name, dns.rdatatype.A)
            if found is not None:
                return found
        for rdtype in ANY_PREFERENCE:
            found = self.zone.get(name, rdtype)
            if found is not None:
                return found
        return None


def _render(response: dns.message.Message, query: dns.message.Message, udp: bool) -> bytes:
    """Wire bytes within the transport's limit; RRsets in a fixed order so answers can be cached."""
    limit = _udp_limit(query.edns, query.payload) if udp else 65535
    try:
        return response.to_wire(max_size=limit, want_shuffle=False)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit, want_shuffle=False)


def _udp_limit(edns: int, payload: int) -> int:
    """The largest UDP response the requester accepts (RFC 1035: 512 without EDNS)."""
    if edns < 0:
        return 512
    return max(512, min(payload, OUR_PAYLOAD))


# -- fast path ----------------------------------------------------------------

class Answerer:
    """``answer()`` with a cache of pre-encoded responses for plain queries.

    ``zone_provider`` is called per query; when it returns a different zone
    object the cache is emptied.  Cached routed answers are reused for every
    client with the same ``Zone.cache_key``; call ``invalidate()`` when the
    routing decision changes without a new zone (e.g. edge health).
    """

    def __init__(self, zone_provider: Callable[[], Zone], max_entries: int = 100_000) -> None:
        self._zone_provider = zone_provider
        self._zone: Zone | None = None
        self._cache: dict[Hashable, bytes] = {}
        self._exact: dict[tuple, bytes] = {}
        self._last_cacheable = False
        self.generation = 0
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"<Answerer cached={len(self._cache)} hits={self.hits} misses={self.misses}>"

    def invalidate(self) -> None:
        self._cache.clear()
        self._exact.clear()
        self.generation += 1

    def refresh(self) -> int:
        """Pick up a new zone from the provider; the cache generation (it changes
        whenever cached answers may be wrong: a new zone, ``invalidate()``)."""
        zone = self._zone_provider()
        if zone is not self._zone:
            self._zone = zone
            self.invalidate()
        return self.generation

    @property
    def last_cacheable(self) -> bool:
        """Whether the answer just given may be given again to the same bytes from
        the same client (with the id patched) until the generation changes."""
        return self._last_cacheable

    def answer(self, data: bytes, client: str, udp: bool = True) -> bytes | None:
        zone = self._zone_provider()
        if zone is not self._zone:
            self._zone = zone
            self.invalidate()
        # First, the very same query bytes from the same client (resolvers repeat
        # themselves): the stored answer needs only the id patched.
        exact = (data[2:], client, udp)
        known = self._exact.get(exact)
        if known is not None:
            self.hits += 1
            self._last_cacheable = True
            return data[:2] + known
        response = self._answer(zone, data, client, udp)
        if response is not None and self._last_cacheable:
            if len(self._exact) >= self.max_entries:
                self._exact.clear()
            self._exact[exact] = response[2:]
        return response

    def _answer(self, zone: Zone, data: bytes, client: str, udp: bool) -> bytes | None:
        self._last_cacheable = False
        plain = plain_query_key(data, udp)
        if plain is None:
            return answer(zone, data, client, udp)
        key, end, ecs = plain
        try:
            full_key = (key, zone.cache_key(client, ecs))
        except Exception:
            log.exception("dns: route key failed for %s", client)
            return answer(zone, data, client, udp)
        cached = self._cache.get(full_key)
        if cached is not None:
            self.hits += 1
            self._last_cacheable = True
            return data[:2] + cached[:10] + data[_HEADER:end] + cached[end - 2:]
        self.misses += 1
        response = answer(zone, data, client, udp)
        if response is not None and response[3] & 0x0F in _CACHEABLE_RCODES:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[full_key] = response[2:]
            self._last_cacheable = True
        return response


_CACHEABLE_RCODES = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED)
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_OPT_TYPE = b"\x00\x29"


def plain_query_key(data: bytes, udp: bool) -> tuple[tuple, int, ClientSubnet | None] | None:
    """(cache key, end of the question, client subnet) for a plain query, else None.

    Plain: QR=0, opcode QUERY, one question of class IN with an uncompressed
    name, no answer/authority records, and either nothing more or exactly one
    OPT (version 0) ending the packet, with no option or one valid client-subnet
    option (RFC 7871). The option's bytes are part of the key, so the cached answer
    echoes exactly that subnet; only the id and the question's case are patched.
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:
        return None
    pos = _HEADER
    while True:
        if pos >= n:
            return None
        length = data[pos]
        if length == 0:
            break
        if length > 63:
            return None
        pos += length + 1
    end = pos + 5
    if end - _HEADER > 259 or end > n or data[end - 2:end] != b"\x00\x01":
        return None
    opt = _plain_opt(data, end, udp)
    if opt is None:
        return None
    payload, ecs_bytes, ecs = opt
    return (data[_HEADER:end].lower(), data[2:4], payload, udp, ecs_bytes), end, ecs


def _plain_opt(data: bytes, end: int, udp: bool) -> tuple[int, bytes, ClientSubnet | None] | None:
    """(response size class: -1 without EDNS, else the UDP limit; the ECS option's
    bytes; the subnet), or None if the query is not plain."""
    arcount = data[10:12]
    if arcount == b"\x00\x00":
        return (-1, b"", None) if len(data) == end else None
    if arcount != b"\x00\x01" or len(data) < end + 11:
        return None
    if data[end] != 0 or data[end + 1:end + 3] != _OPT_TYPE:
        return None
    if data[end + 5:end + 7] != b"\x00\x00":
        return None  # extended rcode / version non-zero
    limit = _udp_limit(0, int.from_bytes(data[end + 3:end + 5], "big")) if udp else 0
    rdlen = int.from_bytes(data[end + 9:end + 11], "big")
    if len(data) != end + 11 + rdlen:
        return None
    if rdlen == 0:
        return limit, b"", None
    option = data[end + 11:]
    if option[:2] != b"\x00\x08" or int.from_bytes(option[2:4], "big") + 4 != rdlen:
        return None  # another option, or several: the full path decides
    ecs = _parse_ecs(option[4:])
    return None if ecs is None else (limit, option, ecs)


@lru_cache(maxsize=65536)  # resolvers repeat their subnets
def _parse_ecs(body: bytes) -> ClientSubnet | None:
    """A well-formed query ECS option (RFC 7871 section 6), else None (the slow path
    answers FORMERR)."""
    if len(body) < 4:
        return None
    family, source, scope = int.from_bytes(body[:2], "big"), body[2], body[3]
    width = 32 if family == 1 else 128 if family == 2 else 0
    address = body[4:]
    if not width or source > width or scope != 0 or len(address) != (source + 7) // 8:
        return None
    if source % 8 and address[-1] & (0xFF >> (source % 8)):
        return None  # bits set beyond the source prefix
    full = address + bytes(width // 8 - len(address))
    text = socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, full)
    return ClientSubnet(text, source)
