"""Registered domains (one label below a public suffix), for the CA's order limits.

The Public Suffix List comes from the ``publicsuffixlist`` package (it ships the list,
so nothing is fetched). Without the package, the last two labels are used, which is
right for ``example.com`` and too coarse for ``example.co.uk`` (it then counts every
``*.co.uk`` domain together: stricter, never looser).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["registered_domain"]


@lru_cache(maxsize=1)
def _psl():
    try:
        from publicsuffixlist import PublicSuffixList
    except ImportError:
        return None
    return PublicSuffixList()


def registered_domain(name: str) -> str:
    name = name.lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    psl = _psl()
    found = psl.privatesuffix(name) if psl is not None else None
    if found:
        return found
    return ".".join(name.split(".")[-2:])
