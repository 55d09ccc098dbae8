"""Push services are routed only to locations that serve their current release.

The control plane's ``release_ready`` channel tells DNS nodes, per push service,
which locations have an edge serving the service's current release.

Rules:
1. ``ready`` None (no release information for this service): every site, as for any
   other service.
2. Otherwise only the sites named in ``ready``: a visitor is never sent to a location
   that would answer with an older release, or with none.
3. When no site is ready (the first release is still on its way everywhere), every
   site: answering with locations that are catching up beats answering with nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .sites import Site

__all__ = ["ready_sites"]


def ready_sites(sites: Sequence[Site], ready: Collection[str] | None) -> list[Site]:
    """Rules 1-3."""
    if ready is None:
        return list(sites)
    chosen = [site for site in sites if site.name in ready]
    return chosen or list(sites)
