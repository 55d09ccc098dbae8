"""Compressing a pushed site's text files at the edge, for files without a precompressed sibling.

Most static sites ship ``app.js`` without ``app.js.br``; a visitor far away then waits
for about seven times the bytes of its HTML, CSS and JavaScript. So an edge makes the
compressed forms itself, once per blob and coding (``edge/variants.py``), and sends the
one the visitor's Accept-Encoding prefers (``site`` Rule 2).

Rules:
1. A file is compressed when its type (``mediatypes``, from its name) is text, or
   JavaScript, JSON (also GeoJSON and glTF's), XML, SVG, YAML, TOML, a web manifest,
   WebAssembly or an uncompressed font format (TrueType, OpenType, icons), and its
   size is from ``MIN_BYTES`` (below, the
   saving fits in the packet the response takes anyway) to ``MAX_BYTES`` (a larger
   text file is a download: sent as it is, with ranges).
2. The codings are ``br`` (Brotli, quality ``BR_QUALITY``) and ``gzip`` (zlib, level
   ``GZIP_LEVEL``), in that order of preference at equal weight (``negotiate`` Rule 4).
   The levels are those fast enough to make on a visitor's first request: over the
   Python docs' HTML, quality 5 gave 0.117 of the bytes at about 100 MB/s, and level 6
   0.139 at about 80 MB/s; Brotli's quality 11 gives 0.099 at about 1 MB/s.
3. ``compress`` is deterministic: the gzip header has no name and no time, so the same
   bytes give the same output on every edge running the same libraries.
4. A compressed form not at least ``WORTH`` smaller than the file is not used (the
   file is sent as it is): bytes that are already compressed inside a text type.
"""

from __future__ import annotations

import zlib

from .mediatypes import content_type

__all__ = ["BR_QUALITY", "CODINGS", "GZIP_LEVEL", "MAX_BYTES", "MIN_BYTES", "WORTH", "compress", "compressible",
           "worth_it"]

CODINGS = ("br", "gzip")  # Rule 2, the server's order
MIN_BYTES = 1024
MAX_BYTES = 16 << 20
BR_QUALITY = 5
GZIP_LEVEL = 6
WORTH = 0.9  # Rule 4: at most this share of the file's bytes

_TYPES = frozenset({
    "application/javascript", "application/json", "application/manifest+json", "application/xml",
    "application/rss+xml", "application/atom+xml", "application/xhtml+xml", "application/ld+json",
    "application/wasm", "image/svg+xml", "image/vnd.microsoft.icon", "image/bmp", "font/ttf", "font/otf",
    "application/geo+json", "application/yaml", "application/toml", "model/gltf+json",
})


def compressible(name: str, size: int) -> bool:
    """Rule 1, for release file ``name`` of ``size`` bytes."""
    if not MIN_BYTES <= size <= MAX_BYTES:
        return False
    kind = content_type(name).partition(";")[0]
    return kind.startswith("text/") or kind in _TYPES


def compress(data: bytes, coding: str) -> bytes:
    """``data`` in ``coding`` (Rules 2, 3)."""
    if coding == "gzip":
        packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip format, no name, time 0
        return packer.compress(data) + packer.flush()
    if coding == "br":
        import brotli

        return brotli.compress(data, quality=BR_QUALITY)
    raise ValueError(f"no compressor for coding {coding!r}: expected one of {', '.join(CODINGS)}")


def worth_it(size: int, compressed: int) -> bool:
    """Rule 4."""
    return compressed <= size * WORTH
