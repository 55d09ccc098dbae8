"""A configured service as the edge runs it: origins' pools, policies, header rules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from owncdn.core.content.site import SiteRules, site_rules
from owncdn.core.http.cachekey import KeyPolicy
from owncdn.core.http.headers import Headers
from owncdn.core.http.https import HttpsPolicy, hsts_value
from owncdn.core.http.policy import CachePolicy
from owncdn.edge.upstream import OriginAddress, OriginPool, Timeouts


@dataclass(frozen=True, slots=True)
class HeaderRules:
    set: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, headers: Headers) -> None:
        for name in self.remove:
            headers.remove(name)
        for name, value in self.set:
            headers.set(name, value)

    def __bool__(self) -> bool:
        return bool(self.set or self.remove)


@dataclass
class ServiceRuntime:
    name: str
    pools: list[OriginPool]
    cache_enabled: bool
    policy: CachePolicy
    key_policy: KeyPolicy
    origin_host: str  # "origin" | "client"
    retries: int
    cookie_bypass: bool
    request_rules: HeaderRules = field(default_factory=HeaderRules)
    response_rules: HeaderRules = field(default_factory=HeaderRules)
    max_object_size: int | None = None
    https: HttpsPolicy | None = None  # None: nothing to do (no redirect, no HSTS)
    site: SiteRules | None = None  # a push service's site rules (edge/static.py); None: not a push service
    front: bool = False  # https, redirect or push: Edge.handle looks at those before the cache

    def __repr__(self) -> str:
        return f"<ServiceRuntime {self.name} origins={[str(p.address) for p in self.pools]}>"

    def close(self) -> None:
        for pool in self.pools:
            pool.close()

    @classmethod
    def from_config(cls, svc) -> "ServiceRuntime":
        t = svc.timeouts
        timeouts = Timeouts(connect=t.connect, first_byte=t.first_byte, idle=t.idle)
        pools = [
            OriginPool(OriginAddress.from_url(str(o.url), o.tls_verify), timeouts) for o in svc.origins
        ]
        cache = svc.cache
        return cls(
            name=svc.name,
            pools=pools,
            cache_enabled=cache.enabled,
            policy=svc.cache_policy(),
            key_policy=svc.key_policy(),
            origin_host=svc.origin_host,
            retries=svc.retries,
            cookie_bypass=cache.cookies.bypass,
            request_rules=_rules(svc.headers.request),
            response_rules=_rules(svc.headers.response),
            max_object_size=cache.max_object_size,
            https=_https(getattr(svc, "https", None)),
            site=site_rules(svc.site) if svc.mode == "push" else None,
            front=getattr(svc, "https", None) is not None or svc.mode != "pull",
        )


def _https(section) -> HttpsPolicy | None:
    if section is None:
        return None
    hsts = section.hsts
    value = hsts_value(hsts.max_age, hsts.include_subdomains, hsts.preload) if hsts is not None else None
    policy = HttpsPolicy(redirect=section.redirect, hsts=value, port=section.port)
    return policy if policy else None


def _rules(section) -> HeaderRules:
    items = tuple((str(k).lower(), _reveal(v)) for k, v in (section.set or {}).items())
    return HeaderRules(set=items, remove=tuple(n.lower() for n in (section.remove or ())))


def _reveal(value) -> str:
    get = getattr(value, "get_secret_value", None)
    return get() if get is not None else str(value)


def trust_checker(networks) -> "callable":
    nets = [ipaddress.ip_network(str(n), strict=False) for n in networks]

    @lru_cache(maxsize=4096)
    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    return trusted
