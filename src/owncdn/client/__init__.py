"""The Python client of the owncdn control plane (what the CLI and scripts use).

    from owncdn.client import Client, ApiError

    with Client("http://127.0.0.1:7700", token) as cdn:
        cdn.add_version("production", open("cdn.yaml").read(), comment="v2 origins")
        cdn.purge("production", prefix="/assets/", wait=10)

``client`` holds :class:`Client`, one method per REST endpoint; ``errors``
holds :class:`ApiError`, raised for every failure with the server's message.
``Client`` is imported on first use (it brings httpx), so ``owncdn push``, which
talks through ``pushapi.PushApi`` (over ``http11.Connection``, a small HTTP/1.1
connection), starts without it.
"""

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it

from .errors import ApiError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["ApiError", "Client"]


def __getattr__(name: str):
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
