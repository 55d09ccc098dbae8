"""The GeoIP database reader: client address -> (lat, lon) and the deciding network.

Reads MaxMind-format ``.mmdb`` files with ``"location": {"latitude", "longitude"}``
(GeoLite2-City, DB-IP City Lite). The DNS fast path calls ``locate`` per query, so
results are cached per /24 (IPv4) or /48 (IPv6) in a bounded LRU dict. A result is
cached only when the database network that decided it is at least that wide, so
the cache never answers for a more specific network it has not seen.
"""

from __future__ import annotations

import ipaddress
import os
from collections import OrderedDict

import maxminddb

Location = tuple[float, float]

_V4_CACHE_SHIFT = 32 - 24  # cache IPv4 per /24
_V6_CACHE_SHIFT = 128 - 48  # cache IPv6 per /48


class GeoDatabase:
    """One open ``.mmdb`` file and its per-prefix lookup cache."""

    def __init__(self, path: str | os.PathLike[str], cache_size: int = 65536) -> None:
        self.path = os.fspath(path)
        self._reader = maxminddb.open_database(self.path)
        self._ipv4_only = self._reader.metadata().ip_version == 4
        self._cache: OrderedDict[tuple[int, int], tuple[Location | None, int]] = OrderedDict()
        self.cache_size = cache_size
        self._by_text: dict[str, tuple[Location | None, int]] = {}
        self.hits = 0
        self.misses = 0

    def locate(self, address: str) -> tuple[Location | None, int]:
        """``((lat, lon), prefix_len)`` for ``address``, or ``(None, prefix_len)``.

        ``prefix_len`` is the length of the database network the answer came from
        (maxminddb's ``get_with_prefix_len``; IPv4 lengths count IPv4 bits even in
        an IPv6 database). When the address is not in the database, it is the length
        of the empty network around it, so an ECS answer for an unknown client is
        scoped to the unknown range rather than to the whole internet.
        ``(None, 0)`` when the database cannot hold the address at all (IPv6 in an
        IPv4-only file). IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is looked up as IPv4.
        Raises ``ValueError`` for a string that is not an IP address.
        """
        known = self._by_text.get(address)  # resolvers and subnets repeat: skip parsing
        if known is not None:
            self.hits += 1
            return known
        result = self._locate(address)
        if len(self._by_text) >= self.cache_size:
            self._by_text.clear()
        self._by_text[address] = result
        return result

    def _locate(self, address: str) -> tuple[Location | None, int]:
        ip = ipaddress.ip_address(address)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.version == 6 and self._ipv4_only:
            return None, 0
        limit, shift = (24, _V4_CACHE_SHIFT) if ip.version == 4 else (48, _V6_CACHE_SHIFT)
        key = (ip.version, int(ip) >> shift)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        record, prefix_len = self._reader.get_with_prefix_len(ip)
        result = (_coordinates(record), prefix_len)
        if prefix_len <= limit:
            self._remember(key, result)
        return result

    def place(self, address: str) -> dict[str, str]:
        """Where ``address`` is, in words: ``continent`` and ``country`` codes and the
        ``city`` name (English), whichever the database has; ``{}`` when unknown.
        Not cached: the mirror list page and tests call it, not the DNS fast path."""
        ip = ipaddress.ip_address(address)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.version == 6 and self._ipv4_only:
            return {}
        record = self._reader.get(ip)
        return _names(record) if isinstance(record, dict) else {}

    def close(self) -> None:
        self._reader.close()
        self._cache.clear()
        self._by_text.clear()

    def __enter__(self) -> GeoDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<GeoDatabase {self.path!r} cached={len(self._cache)}/{self.cache_size}"
            f" hits={self.hits} misses={self.misses}>"
        )

    def _remember(self, key: tuple[int, int], result: tuple[Location | None, int]) -> None:
        self._cache[key] = result
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _coordinates(record: object) -> Location | None:
    """(lat, lon) from a City-layout record, or None when it has no coordinates."""
    if not isinstance(record, dict):
        return None
    location = record.get("location")
    if not isinstance(location, dict):
        return None
    lat, lon = location.get("latitude"), location.get("longitude")
    if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
        return None
    return float(lat), float(lon)


def _names(record: dict) -> dict[str, str]:
    """continent / country codes and the English city name of a City-layout record."""
    out: dict[str, str] = {}
    for key in ("continent", "country"):
        part = record.get(key)
        code = part.get("code" if key == "continent" else "iso_code") if isinstance(part, dict) else None
        if isinstance(code, str):
            out[key] = code
    city = record.get("city")
    names = city.get("names") if isinstance(city, dict) else None
    if isinstance(names, dict) and isinstance(names.get("en"), str):
        out["city"] = names["en"]
    return out
