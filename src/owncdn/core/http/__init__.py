"""HTTP cache semantics for a shared cache, with no I/O and no clock.

This package answers the questions an edge asks about HTTP messages; the edge does all
the networking and passes the time (``now``, Unix seconds) in. Reading order follows
a request through the edge:

- ``headers``     Headers (ordered multi-map), list / Cache-Control parsing, HTTP dates,
                  hop-by-hop fields.
- ``cachekey``    primary key from service, host, target, query policy and cookies;
                  ``targets`` holds the target/host normalisation it shares with
                  ``invalidation``.
- ``vary``        secondary key from Vary (RFC 9111 §4.1).
- ``reuse``       may a stored response answer now: FRESH, STALE_WHILE_REVALIDATE or
                  REVALIDATE; and may it answer when the origin failed (RFC 9111 §4,
                  RFC 5861). It builds on ``freshness`` (lifetime and age, §4.2) and the
                  ``stored`` metadata kept with each response.
- ``conditional`` the client's If-* headers against the stored response: 304 / 412
                  (RFC 9110 §13), with ``etags`` for entity-tag comparison.
- ``ranges``      Range / If-Range / Content-Range / multipart plans (RFC 9110 §14).
- ``validation``  revalidating with the origin: conditional headers out, 304 in
                  (RFC 9111 §4.3).
- ``storable``    may a new origin response be stored (RFC 9111 §3); ``make_stored``
                  then builds its StoredResponse, computing once what every hit needs.
- ``invalidation``which URLs an unsafe request invalidates (RFC 9111 §4.4).
- ``forwarding``  request / response header rewriting at the proxy (RFC 9110 §7.6).
- ``directives``  which directives apply (CDN-Cache-Control wins, RFC 9213) and how
                  their arguments read; ``policy`` holds the operator's overrides.

HTTP/2's server side is here too, without I/O (edge/h2.py does the sockets):
``h2server`` (the connection: frames, stream states, flow control, RFC 9113) on
``h2frames`` (the wire format), ``h2fields`` (request field checks, §8.2-§8.3),
``hpack_in`` (request header blocks, on the hpack package's Decoder) and ``hpack_out``
(response heads as HPACK blocks, RFC 7541).

Each module states its rules at its top; tests mirror the modules one to one and cite
the RFC sentence each row checks.
"""

from .cachekey import KeyPolicy, cache_key, uri_key
from .conditional import evaluate_conditionals, not_modified_headers
from .directives import effective_cache_control
from .forwarding import forward_request_headers, forward_response_headers
from .freshness import current_age, freshness_lifetime
from .headers import (
    HOP_BY_HOP,
    Headers,
    format_http_date,
    parse_cache_control,
    parse_http_date,
    strip_hop_by_hop,
)
from .invalidation import invalidated_targets
from .policy import CachePolicy
from .ranges import (
    ByteRange,
    MultipartPlan,
    content_range,
    if_range_allows,
    multipart_body,
    multipart_plan,
    parse_range,
    unsatisfied_range,
)
from .reuse import Reuse, only_if_cached, reuse_decision, stale_if_error_allowed
from .storable import storability
from .stored import StoredResponse, make_stored
from .validation import apply_304, conditional_headers, selected_by_304
from .vary import vary_key, vary_matches

__all__ = [
    "HOP_BY_HOP",
    "ByteRange",
    "CachePolicy",
    "Headers",
    "KeyPolicy",
    "MultipartPlan",
    "Reuse",
    "StoredResponse",
    "apply_304",
    "cache_key",
    "conditional_headers",
    "content_range",
    "current_age",
    "effective_cache_control",
    "evaluate_conditionals",
    "format_http_date",
    "forward_request_headers",
    "forward_response_headers",
    "freshness_lifetime",
    "if_range_allows",
    "invalidated_targets",
    "make_stored",
    "multipart_body",
    "multipart_plan",
    "not_modified_headers",
    "only_if_cached",
    "parse_cache_control",
    "parse_http_date",
    "parse_range",
    "reuse_decision",
    "selected_by_304",
    "stale_if_error_allowed",
    "storability",
    "strip_hop_by_hop",
    "unsatisfied_range",
    "uri_key",
    "vary_key",
    "vary_matches",
]
