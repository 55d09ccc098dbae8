"""owncdn's authoritative GeoDNS server.

- ``zone``: the zone as an immutable value (static records, routed names whose
  A/AAAA answers come from a route callback, ACME TXT records swapped in by
  copy-on-write).  Pure.
- ``wire``: DNS message in, DNS message out.  ``answer()`` does it with
  dnspython; ``Answerer`` puts a hand-written fast path with a cache of
  pre-encoded answers in front of it.  Pure.
- ``server``: the asyncio UDP + TCP listener (RFC 7766) around an ``Answerer``.
- ``geo``: the GeoIP database reader that feeds routing decisions.
"""
