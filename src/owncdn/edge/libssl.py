"""Three OpenSSL settings Python's `ssl` module does not expose, set through ctypes.

Rules:
1. Only `ssl.SSLContext` objects built by the edge are touched, and only through
   `SSL_CTX_ctrl` and `SSL_CTX_get_options` of the very libssl that Python's `_ssl`
   module is linked against (symbols looked up through `_ssl`'s own handle).
2. The `SSL_CTX *` is read from the context object (CPython keeps it right after the
   object header). Before anything is set, that pointer is checked: OpenSSL's
   options read through it must equal `ctx.options`, for two different option
   values. A failed check, a missing symbol or another interpreter (PyPy) makes
   `available()` false; callers then keep OpenSSL's defaults, which work, and say so.
3. `set_ticket_key(ctx, key)`: the 80-byte session-ticket key (name, HMAC key, AES
   key; `core/tls/tickets.py`); it is read back and compared. OpenSSL encrypts the
   tickets of every connection accepted on a context with that context's key.
4. `tune(ctx)`: `SSL_MODE_NO_AUTO_CHAIN` (the chain sent is the one loaded, as nginx
   does; otherwise OpenSSL tries to build a chain from the empty trust store on every
   handshake) and no server-side session cache (tickets are stateless: keeping every
   session in memory costs a lock and an insertion per handshake and resumes nothing
   that a ticket does not).
"""

from __future__ import annotations

import ctypes
import ssl

__all__ = ["available", "set_ticket_key", "tune"]

SSL_CTRL_MODE = 33
SSL_CTRL_SET_SESS_CACHE_MODE = 44
SSL_CTRL_GET_TLSEXT_TICKET_KEYS = 58
SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59
SSL_MODE_NO_AUTO_CHAIN = 0x8
SSL_SESS_CACHE_OFF = 0x0


def _open():
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        ctrl, get_options = lib.SSL_CTX_ctrl, lib.SSL_CTX_get_options
    except (ImportError, OSError, AttributeError):
        return None
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    ctrl.restype = ctypes.c_long
    get_options.argtypes = [ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    return ctrl, get_options


_LIB = _open()
_OFFSET = object.__basicsize__  # CPython: PyObject_HEAD, then `SSL_CTX *ctx` (Rule 2)


def _pointer(ctx: ssl.SSLContext) -> int | None:
    """The context's SSL_CTX *, checked (Rule 2); None when it cannot be trusted."""
    if _LIB is None or type(ctx).__basicsize__ <= _OFFSET:
        return None
    _, get_options = _LIB
    ptr = ctypes.c_void_p.from_address(id(ctx) + _OFFSET).value
    if not ptr:
        return None
    saved = ctx.options
    try:
        if get_options(ptr) != ctx.options:
            return None
        ctx.options = saved ^ ssl.OP_NO_COMPRESSION
        if get_options(ptr) != ctx.options:
            return None
    finally:
        ctx.options = saved
    return ptr


def available() -> bool:
    """Whether the settings of Rules 3-4 can be made in this interpreter."""
    return _pointer(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is not None


def set_ticket_key(ctx: ssl.SSLContext, key: bytes) -> bool:
    """Rule 3; False (nothing changed) when it cannot be done."""
    ptr = _pointer(ctx)
    if ptr is None or len(key) != 80:
        return False
    ctrl, _ = _LIB
    if ctrl(ptr, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, len(key), key) != 1:
        return False
    back = ctypes.create_string_buffer(len(key))
    return ctrl(ptr, SSL_CTRL_GET_TLSEXT_TICKET_KEYS, len(key), back) == 1 and back.raw == key


def tune(ctx: ssl.SSLContext) -> bool:
    """Rule 4; False when it cannot be done (OpenSSL's defaults stay)."""
    ptr = _pointer(ctx)
    if ptr is None:
        return False
    ctrl, _ = _LIB
    ctrl(ptr, SSL_CTRL_MODE, SSL_MODE_NO_AUTO_CHAIN, None)
    ctrl(ptr, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, None)
    return True
