"""``ApiError``: every failure of a client call, with the server's own words."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error answer of the control plane, or no answer at all.

    ``status`` is the HTTP status (0 when the control plane could not be
    reached), ``code`` the server's short code (``"unreachable"`` /
    ``"timeout"`` for connection failures), ``message`` the sentence to show a
    person (also ``str(error)``), ``problems`` the itemised problems, if any.
    """

    def __init__(self, status: int, code: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"
