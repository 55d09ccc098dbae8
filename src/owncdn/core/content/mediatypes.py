"""Content-Type of a pushed file from its name.

Rules:
1. The type comes from the last suffix of the file name, case-insensitively, from
   the table below (the same on every machine: the system's mime.types is not read).
2. Text types, JavaScript, JSON, XML, SVG, web manifests, YAML, TOML and glTF's JSON
   say ``charset=utf-8``; checksum files (``.sha256``, ``.md5``, ...) are plain text.
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
    "xhtml": "application/xhtml+xml" + _UTF8, "jsonld": "application/ld+json" + _UTF8,
    "geojson": "application/geo+json" + _UTF8, "yaml": "application/yaml" + _UTF8,
    "yml": "application/yaml" + _UTF8, "toml": "application/toml" + _UTF8, "vtt": "text/vtt" + _UTF8,
    "vcf": "text/vcard" + _UTF8, "epub": "application/epub+zip",
    "gltf": "model/gltf+json" + _UTF8, "glb": "model/gltf-binary",
    # images
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "avif": "image/avif", "svg": "image/svg+xml" + _UTF8,
    "ico": "image/vnd.microsoft.icon", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    "jxl": "image/jxl", "heic": "image/heic", "heif": "image/heif",
    # fonts
    "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
    # audio and video
    "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac",
    "mp4": "video/mp4", "webm": "video/webm", "m3u8": "application/vnd.apple.mpegurl",
    "ts": "video/mp2t", "opus": "audio/ogg", "oga": "audio/ogg", "ogv": "video/ogg", "m4a": "audio/mp4",
    "aac": "audio/aac", "m4v": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska",
    # archives and downloads
    "zip": "application/zip", "gz": "application/gzip", "tgz": "application/gzip",
    "br": "application/x-brotli", "zst": "application/zstd", "xz": "application/x-xz",
    "bz2": "application/x-bzip2", "tar": "application/x-tar", "deb": "application/vnd.debian.binary-package",
    "rpm": "application/x-rpm", "iso": "application/x-iso9660-image", "dmg": "application/x-apple-diskimage",
    "exe": "application/vnd.microsoft.portable-executable", "msi": "application/x-msi",
    "whl": "application/zip", "jar": "application/java-archive", "apk": "application/vnd.android.package-archive",
    "sig": "application/pgp-signature", "asc": "application/pgp-signature", "7z": "application/x-7z-compressed",
    # checksums next to a download (``app.iso.sha256``): shown as text in a browser
    "sha256": "text/plain" + _UTF8, "sha512": "text/plain" + _UTF8, "sha1": "text/plain" + _UTF8,
    "md5": "text/plain" + _UTF8,
}


def content_type(name: str) -> str:
    """The Content-Type for a file called ``name`` (a path; only the last segment counts)."""
    leaf = name.rpartition("/")[2]
    stem, dot, suffix = leaf.rpartition(".")
    if not dot or not stem:
        return DEFAULT_TYPE
    return _TYPES.get(suffix.lower(), DEFAULT_TYPE)
