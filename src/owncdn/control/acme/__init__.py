"""ACME in the control plane: the only client of the CA for the whole fleet.

- ``manager``   the task inside ``owncdn control``: wanted certificates, renewal, ARI, webhooks
- ``issuer``    one order: store lease, quota ledger, challenges published, propagation, finalize
- ``client``    the protocol through the ``acme`` library; one account per directory URL
- ``channels``  ``cert``, ``acme_dns`` and ``acme_http``: what edges and DNS nodes receive
- ``notify``    webhooks (JSON or Slack) with retries
- ``pem``       parsing and checking chains and keys; new keys and CSRs
- ``sealing``   private keys at rest (Fernet with ``OWNCDN_SECRET_KEY``, else owner-only)
- ``domains``   registered domains (Public Suffix List) for the order ledger

Decisions without I/O (what is wanted, when to renew, backoff, quota) live in
``owncdn.core.certs``.
"""

from .channels import acme_channels
from .issuer import IssueOptions
from .manager import AcmeManager
from .notify import Notifier, Webhook

__all__ = ["AcmeManager", "IssueOptions", "Notifier", "Webhook", "acme_channels"]
