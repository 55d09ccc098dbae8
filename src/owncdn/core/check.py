"""Verdicts of ``owncdn check``: what was observed in, ✓/✗ lines out (pure).

    checks = [dns_verdict("www.example.com", ["192.0.2.10"], "10.0.0.53:53"),
              certificate_verdict(cert, "www.example.com", now), ...]
    print(render(checks)); sys.exit(exit_status(checks))

The I/O (DNS query, TLS handshake, HTTP requests, purge) is ``owncdn.cli.check_cmd``.

Rules:

1. A check is a name, a state (``ok``, ``fail`` or ``skip``) and one line of detail;
   the exit status is 1 when any check failed, else 0 (skipped ones do not count),
   so ``owncdn check`` can gate a deploy.
2. DNS: at least one address in the answer.
3. Certificate: the time is inside its validity, it expires more than ``min_days``
   days from now, and the host name matches one of its DNS names (RFC 6125 §6.4:
   case-insensitive; a ``*`` is allowed only as the whole left-most label and
   matches exactly one label, never the bare parent domain).
4. Edge: the response names the edge that answered (``X-Served-By``).
5. Cache: of two requests, the second is a ``HIT`` (``MISS`` then ``HIT``, or ``HIT``
   twice); anything else (``PASS``, no ``X-Cache``) fails, naming both values.
6. Forwarding, from the origin's echo of the request it received: ``Host`` is the
   expected one when one is given (else present); the last ``X-Forwarded-For``
   entry is the address the edge saw the checker come from. That is the checker's
   own source address, unless the checker sits behind NAT (its address is private
   and the edge's is public): then any valid IP address is accepted.
7. Purge: after the purge was acked, the next request is a ``MISS``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Check", "cache_verdict", "certificate_verdict", "dns_verdict", "edge_verdict", "exit_status",
           "forwarding_verdicts", "hostname_matches", "purge_verdict", "render"]

MARKS = {"ok": "✓", "fail": "✗", "skip": "-"}


@dataclass(frozen=True)
class Check:
    name: str
    state: str   # ok | fail | skip
    detail: str

    @property
    def ok(self) -> bool:
        return self.state != "fail"


def _check(name: str, ok: bool, detail: str) -> Check:
    return Check(name, "ok" if ok else "fail", detail)


def render(checks: list[Check]) -> str:
    """One line per check (rule 1)."""
    width = max((len(c.name) for c in checks), default=0)
    return "\n".join(f"{MARKS[c.state]} {c.name.ljust(width)}  {c.detail}" for c in checks) + "\n"


def exit_status(checks: list[Check]) -> int:
    return 0 if all(c.ok for c in checks) else 1


def dns_verdict(name: str, addresses: list[str], server: str) -> Check:
    """Rule 2."""
    if not addresses:
        return _check("DNS", False, f"{name}: no address from {server}")
    return _check("DNS", True, f"{name} -> {', '.join(addresses)} (from {server})")


def hostname_matches(host: str, names: list[str]) -> bool:
    """Rule 3's name matching (RFC 6125 §6.4.1, §6.4.3)."""
    host = host.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "*" not in name[2:]:
            label, dot, parent = host.partition(".")
            if dot and label and parent == name[2:]:
                return True
    return False


def certificate_verdict(host: str, names: list[str], not_before: datetime, not_after: datetime,
                        now: datetime, min_days: float = 7.0) -> Check:
    """Rule 3. Times are timezone-aware."""
    problems = []
    if now < not_before:
        problems.append(f"not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    if now >= not_after:
        problems.append(f"expired {not_after:%Y-%m-%d %H:%M} UTC")
    days = (not_after - now).total_seconds() / 86400
    if now < not_after and days <= min_days:
        problems.append(f"expires in {days:.1f} days (at most {min_days:g} allowed)")
    if not hostname_matches(host, names):
        problems.append(f"{host} is not among its names")
    summary = f"names {', '.join(names) or '(none)'}; expires {not_after:%Y-%m-%d} ({days:.0f} days)"
    return _check("TLS certificate", not problems, "; ".join([*problems, summary]) if problems else summary)


def edge_verdict(served_by: str | None, address: str) -> Check:
    """Rule 4."""
    if not served_by:
        return _check("edge", False, f"{address} answered without X-Served-By: not an owncdn edge?")
    return _check("edge", True, f"{served_by} at {address}")


def cache_verdict(first: str | None, second: str | None) -> Check:
    """Rule 5."""
    pair = f"{first or '(none)'} then {second or '(none)'}"
    return _check("cache", (second or "").upper() == "HIT", pair)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def behind_nat(local: str, edge: str) -> bool:
    """Rule 6: the checker's address is private and the edge's is public."""
    try:
        return not ipaddress.ip_address(local).is_global and ipaddress.ip_address(edge).is_global
    except ValueError:
        return False


def forwarding_verdicts(echoed: list[tuple[str, str]] | None, expected_host: str | None, local: str,
                        edge: str) -> list[Check]:
    """Rule 6: ``Host`` and ``X-Forwarded-For`` as the origin echoed them (None: no echo)."""
    if echoed is None:
        return [_check("Host at origin", False, "no echo from the origin"),
                _check("X-Forwarded-For", False, "no echo from the origin")]
    fields: dict[str, list[str]] = {}
    for k, v in echoed:
        fields.setdefault(k.lower(), []).append(v)
    hosts = fields.get("host", [])
    host = hosts[0] if hosts else None
    if host is None:
        host_check = _check("Host at origin", False, "the origin received no Host")
    elif expected_host is not None and host.lower() != expected_host.lower():
        host_check = _check("Host at origin", False, f"{host}, expected {expected_host}")
    else:
        host_check = _check("Host at origin", True, host + ("" if expected_host else " (no --origin-host to compare)"))
    chain = [p.strip() for v in fields.get("x-forwarded-for", []) for p in v.split(",") if p.strip()]
    if not chain:
        xff = _check("X-Forwarded-For", False, "the origin received no X-Forwarded-For")
    elif behind_nat(local, edge):
        xff = _check("X-Forwarded-For", _is_ip(chain[-1]), f"{', '.join(chain)} (this host is behind NAT)")
    else:
        xff = _check("X-Forwarded-For", chain[-1] == local,
                     ", ".join(chain) + ("" if chain[-1] == local else f"; expected the last to be {local}"))
    return [host_check, xff]


def purge_verdict(after: str | None, acked: str) -> Check:
    """Rule 7."""
    return _check("purge", (after or "").upper() == "MISS", f"{acked}; next request: {after or '(no X-Cache)'}")
