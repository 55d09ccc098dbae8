"""The EDNS Client Subnet scope of a routed answer (RFC 7871 section 7.2.1)."""

from __future__ import annotations

# ECS FAMILY codes (1 = IPv4, 2 = IPv6); 4 and 6 are accepted as well.
_ADDRESS_BITS = {1: 32, 2: 128, 4: 32, 6: 128}


def ecs_scope(source_prefix: int, network_prefix: int | None, family: int) -> int:
    """The SCOPE PREFIX-LENGTH to answer with.

    The answer was decided by the database network the client address fell in, so
    it holds for that whole network: answer its prefix length ``/N`` (capped at the
    address width). N may be longer than the source prefix: that tells the resolver
    its prefix was not specific enough (RFC 7871 7.2.1). Answer 0 (valid for all)
    when no network decided the answer (``network_prefix is None``) or the query
    carried source prefix 0 (the client asked for no tailoring).
    """
    bits = _ADDRESS_BITS.get(family)
    if bits is None:
        raise ValueError(f"ECS family must be 1 (IPv4) or 2 (IPv6), not {family!r}")
    if not 0 <= source_prefix <= bits:
        raise ValueError(f"source prefix /{source_prefix} is outside 0..{bits}")
    if network_prefix is None or source_prefix == 0:
        return 0
    if network_prefix < 0:
        raise ValueError(f"network prefix /{network_prefix} is negative")
    return min(network_prefix, bits)
