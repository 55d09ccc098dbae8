"""A service's HTTPS policy: redirecting plain HTTP, and Strict-Transport-Security.

Rules:
1. Strict-Transport-Security goes only on responses sent over HTTPS (RFC 6797 §7.2:
   "An HSTS Host MUST NOT include the STS header field in HTTP responses conveyed
   over non-secure transport"). Its value is `max-age=N`, then `includeSubDomains`
   and `preload` when asked for (§6.1).
2. With `redirect`, a request over plain HTTP is answered with a permanent redirect
   to the same host and target over https (§7.2 recommends it): 301 for GET and
   HEAD, 308 for every other method so that the method and body are kept
   (RFC 9110 §15.4.9) instead of turning a POST into a GET.
3. The Location keeps the host without its port, plus the HTTPS port when it is
   not 443, and the request target as it came (path and query).
4. Over HTTPS, and without `redirect`, a request is served as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HttpsPolicy", "hsts_value"]


def hsts_value(max_age: int, include_subdomains: bool = False, preload: bool = False) -> str:
    """The Strict-Transport-Security field value (Rule 1)."""
    parts = [f"max-age={int(max_age)}"]
    if include_subdomains:
        parts.append("includeSubDomains")
    if preload:
        parts.append("preload")
    return "; ".join(parts)


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


@dataclass(frozen=True, slots=True)
class HttpsPolicy:
    """What a service does about HTTPS; `hsts` is the field value or None."""

    redirect: bool = False
    hsts: str | None = None
    port: int = 443

    def __bool__(self) -> bool:
        return self.redirect or self.hsts is not None

    def redirect_for(self, scheme: str, method: str, host: str, target: str) -> tuple[int, str] | None:
        """(status, location) when a request must be redirected to https (Rules 2-4)."""
        if not self.redirect or scheme == "https":
            return None
        status = 301 if method in ("GET", "HEAD") else 308
        name = _host_name(host)
        port = "" if self.port == 443 else f":{self.port}"
        path = target if target.startswith("/") else "/"
        return status, f"https://{name}{port}{path}"

    def response_field(self, scheme: str) -> bytes:
        """The Strict-Transport-Security line for a response sent over `scheme` (Rule 1)."""
        if scheme != "https" or self.hsts is None:
            return b""
        return b"Strict-Transport-Security: %s\r\n" % self.hsts.encode("ascii")
