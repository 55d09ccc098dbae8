"""The control plane's REST API (FastAPI): ``create_app(store, zone=..., hub=...)``.

The parts, one module per resource:

- ``auth``      bearer tokens, scopes, node-bound tokens (start here)
- ``errors``    the one JSON error shape, for our errors and FastAPI's
- ``schemas``   request / response models (what the OpenAPI document shows)
- ``versions``  config versions: validate (secrets as ``<secret>``), store, roll back
- ``services``  list services; add one from an origin URL -> its CNAME
- ``nodes``     registration, reports, purge acks, status and drift
- ``events``    each node's server-sent event stream of versions and purges
- ``purges``    purge, and wait for the nodes' acks
- ``tokens``    create / list / revoke tokens
- ``app``       ``create_app``; ``server``: ``ApiServer``, uvicorn in a thread

Endpoints are sync functions (FastAPI runs them in its thread pool, where the
synchronous store lives) except the event stream and purge creation, which
wait on the :class:`~owncdn.control.hub.Hub` and call the store through
``run_in_threadpool``.
"""

from .app import create_app
from .errors import ApiProblem
from .server import ApiServer

__all__ = ["ApiProblem", "ApiServer", "create_app"]
