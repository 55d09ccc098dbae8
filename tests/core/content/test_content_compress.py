"""owncdn.core.content.compress: which pushed files an edge compresses, and how (rules 1-4)."""

from __future__ import annotations

import gzip
import os

import brotli
import pytest

from owncdn.core.content.compress import MAX_BYTES, MIN_BYTES, compress, compressible, worth_it


@pytest.mark.parametrize("name, size, expected", [
    # Rule 1: text and text-like types, by name
    ("index.html", 5000, True),
    ("docs/style.css", 5000, True),
    ("app.3f2a.js", 5000, True),
    ("app.mjs", 5000, True),
    ("data/feed.json", 5000, True),
    ("app.js.map", 5000, True),
    ("site.webmanifest", 5000, True),
    ("sitemap.xml", 5000, True),
    ("feed.rss", 5000, True),
    ("README.txt", 5000, True),
    ("notes.md", 5000, True),
    ("table.csv", 5000, True),
    ("logo.svg", 5000, True),
    ("favicon.ico", 5000, True),
    ("app.wasm", 5000, True),
    ("font.ttf", 5000, True),
    ("font.otf", 5000, True),
    ("PAGE.HTML", 5000, True),          # suffixes are case-insensitive (mediatypes Rule 1)
    # ... not what is compressed already, or binary
    ("photo.jpg", 5000, False),
    ("img.png", 5000, False),
    ("img.webp", 5000, False),
    ("font.woff2", 5000, False),
    ("font.woff", 5000, False),
    ("app.js.gz", 5000, False),
    ("app.js.br", 5000, False),
    ("release.tar.xz", 5000, False),
    ("doc.pdf", 5000, False),
    ("video.mp4", 5000, False),
    ("no-suffix", 5000, False),
    ("scene.glb", 5000, False),
    # text beyond text/*
    ("config.yaml", 5000, True),
    ("Cargo.toml", 5000, True),
    ("map.geojson", 5000, True),
    ("scene.gltf", 5000, True),
    ("app.iso.sha256", 5000, True),
    # ... and only from MIN_BYTES to MAX_BYTES
    ("index.html", MIN_BYTES - 1, False),
    ("index.html", MIN_BYTES, True),
    ("index.html", MAX_BYTES, True),
    ("index.html", MAX_BYTES + 1, False),
    ("index.html", 0, False),
])
def test_compressible(name, size, expected):
    assert compressible(name, size) is expected


TEXT = b"<p>owncdn pushes sites to every edge.</p>\n" * 200


@pytest.mark.parametrize("coding, decompress", [("gzip", gzip.decompress), ("br", brotli.decompress)])
def test_compress_round_trips_and_is_deterministic(coding, decompress):
    out = compress(TEXT, coding)
    assert decompress(out) == TEXT
    assert out == compress(TEXT, coding)          # Rule 3: the same bytes on every edge
    assert len(out) < len(TEXT) // 10


def test_the_gzip_form_names_no_file_and_no_time():
    out = compress(TEXT, "gzip")
    assert out[:3] == b"\x1f\x8b\x08" and out[3] == 0   # no FNAME, FCOMMENT or FEXTRA flag
    assert out[4:8] == b"\0\0\0\0"                        # MTIME 0


def test_unknown_coding():
    with pytest.raises(ValueError, match="no compressor for coding 'zstd'"):
        compress(TEXT, "zstd")


def test_worth_it():
    assert worth_it(1000, 900) and not worth_it(1000, 901)   # Rule 4: at least a tenth smaller
    noise = os.urandom(5000)
    assert not worth_it(len(noise), len(compress(noise, "gzip")))
