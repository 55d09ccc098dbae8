"""Certificate decisions without I/O: which certificates a config needs, when to renew
them, how long to wait after a failure, and whether the CA's order limit allows one more.

- ``wanted``   the certificates a config asks the CA for (one per service)
- ``renewal``  renewal time (two thirds of the lifetime, or the CA's ARI window), backoff
- ``ledger``   the per-registered-domain order limit

The control plane's ACME manager (``owncdn.control.acme``) does the I/O around them;
every function here takes the clock as an argument.
"""

from .ledger import QuotaExceeded, check_quota
from .renewal import backoff_seconds, is_due, renew_at
from .wanted import WantedCert, wanted_certs

__all__ = ["QuotaExceeded", "WantedCert", "backoff_seconds", "check_quota", "is_due", "renew_at", "wanted_certs"]
