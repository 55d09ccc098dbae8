"""The Python client of the owncdn control plane (what the CLI and scripts use).

    from owncdn.client import Client, ApiError

    with Client("http://127.0.0.1:7700", token) as cdn:
        cdn.add_version("production", open("cdn.yaml").read(), comment="v2 origins")
        cdn.purge("production", prefix="/assets/", wait=10)

``client`` holds :class:`Client`, one method per REST endpoint; ``errors``
holds :class:`ApiError`, raised for every failure with the server's message.
"""

from .client import Client
from .errors import ApiError

__all__ = ["ApiError", "Client"]
