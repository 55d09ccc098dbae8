"""Pushed content, pure: release manifests and what changes between two of them.

- ``digest``    blob names: ``<hex>-b3`` (BLAKE3, new pushes) or ``<hex>`` (SHA-256,
                older releases), the hash a name says, ``name_of(hasher)``.
- ``manifest``  ``Manifest`` (paths -> blob name + size), ``parse_manifest`` with path
                checks (nothing that could leave the release directory), the
                canonical encoding and the manifest id (its SHA-256).
- ``diff``      ``diff(old, new)``: added / changed / removed paths and the blobs
                an edge holding ``old`` needs for ``new``.
- ``changes``   a manifest as its changes from another (``{path: entry | None}``),
                applied with the checks of a parse, and its encoding checked
                against an announced id.
- ``bundle``    many blobs in one HTTP body (``<blob name> <size>\n<bytes>`` records)
                and ``BundleReader``, its sans-IO reader.
- ``packindex`` the index of an edge's blob pack (``owncdn/packs.py``): fixed-size,
                checksummed records of verified blobs (name, offset, size).
- ``retention`` which releases keep their blobs on the control plane (the newest N
                per service, the current one, those nodes serve) and which stored
                blobs blob GC deletes (unreferenced and older than a grace period).

Serving a release (the edge's ``edge/static.py`` sends what these decide):

- ``site``        ``answer(rules, files, target, accept_encoding, released_at)``: a
                  file with its fields, a redirect, or a plain 400 / 404.
- ``paths``       target decoding and pretty URLs (``/about`` -> ``about.html``).
- ``redirects``   redirect rules (exact paths and ``/prefix/*`` splats).
- ``globs``       path patterns of header rules.
- ``negotiate``   precompressed siblings chosen by Accept-Encoding.
- ``mediatypes``  Content-Type from a file name.

No files are read here: the CLI walks directories (``owncdn.client.sitedir``), the
control plane stores blobs (``owncdn.control.blobs``).
"""

from .diff import ManifestDiff, diff
from .digest import is_blob_name
from .manifest import MAX_PATH, FileEntry, Manifest, ManifestError, check_path, parse_manifest

__all__ = ["MAX_PATH", "FileEntry", "Manifest", "ManifestDiff", "ManifestError", "check_path", "diff",
           "is_blob_name", "parse_manifest"]
