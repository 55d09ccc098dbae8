"""Content-Type of a pushed file from its name.

Rules:
1. The type comes from the last suffix of the file name, case-insensitively, from
   the table below (the same on every machine: the system's mime.types is not read).
2. Text types, JavaScript, JSON, XML, SVG and web manifests say ``charset=utf-8``.
3. An unknown suffix is ``application/octet-stream``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TYPE", "content_type"]

DEFAULT_TYPE = "application/octet-stream"
_UTF8 = "; charset=utf-8"

_TYPES = {
    # documents and code
    "html": "text/html" + _UTF8, "htm": "text/html" + _UTF8, "css": "text/css" + _UTF8,
    "js": "text/javascript" + _UTF8, "mjs": "text/javascript" + _UTF8,
    "json": "application/json" + _UTF8, "map": "application/json" + _UTF8,
    "webmanifest": "application/manifest+json" + _UTF8, "xml": "application/xml" + _UTF8,
    "rss": "application/rss+xml" + _UTF8, "atom": "application/atom+xml" + _UTF8,
    "txt": "text/plain" + _UTF8, "md": "text/markdown" + _UTF8, "csv": "text/csv" + _UTF8,
    "ics": "text/calendar" + _UTF8, "wasm": "application/wasm", "pdf": "application/pdf",
    # images
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "avif": "image/avif", "svg": "image/svg+xml" + _UTF8,
    "ico": "image/vnd.microsoft.icon", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    # fonts
    "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
    # audio and video
    "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac",
    "mp4": "video/mp4", "webm": "video/webm", "m3u8": "application/vnd.apple.mpegurl",
    "ts": "video/mp2t",
    # archives and downloads
    "zip": "application/zip", "gz": "application/gzip", "tgz": "application/gzip",
    "br": "application/x-brotli", "zst": "application/zstd", "xz": "application/x-xz",
    "bz2": "application/x-bzip2", "tar": "application/x-tar", "deb": "application/vnd.debian.binary-package",
    "rpm": "application/x-rpm", "iso": "application/x-iso9660-image", "dmg": "application/x-apple-diskimage",
    "exe": "application/vnd.microsoft.portable-executable", "msi": "application/x-msi",
    "whl": "application/zip", "jar": "application/java-archive", "apk": "application/vnd.android.package-archive",
    "sig": "application/pgp-signature", "asc": "application/pgp-signature",
}


def content_type(name: str) -> str:
    """The Content-Type for a file called ``name`` (a path; only the last segment counts)."""
    leaf = name.rpartition("/")[2]
    stem, dot, suffix = leaf.rpartition(".")
    if not dot or not stem:
        return DEFAULT_TYPE
    return _TYPES.get(suffix.lower(), DEFAULT_TYPE)
