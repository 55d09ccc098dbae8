"""A service's HTTPS policy applied to one request (`core.http.https` decides).

Rules:
1. Over plain HTTP, a service with `https.redirect` answers every request with a
   permanent redirect to https before anything else happens (no cache lookup, no
   origin); the redirect is logged like any response the edge makes up.
2. Over HTTPS, a service with `https.hsts` adds Strict-Transport-Security to every
   response, hits included, through `Request.added` (edge/responses.py rule 4).
"""

from __future__ import annotations


def https_front(edge, req, svc) -> bool:
    """Apply `svc.https` to `req`; True when the request has been answered."""
    policy = svc.https
    scheme = getattr(req.conn, "scheme", "http")
    if scheme == "https":
        req.added = policy.response_field(scheme)
        return False
    found = policy.redirect_for(scheme, req.method, req.host, req.target)
    if found is None:
        return False
    status, location = found
    edge.reply(req, status, f"this site is served over HTTPS: {location}",
               b"Location: %s\r\n" % location.encode("latin-1"))
    return True
