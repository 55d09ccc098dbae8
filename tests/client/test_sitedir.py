"""Reading a directory to push: paths, symlinks, limits."""

import os

from pathlib import Path

import pytest

from owncdn.client.sitedir import Limits, SiteError, scan_site
from owncdn.core.content.digest import digest


def sha(data: bytes) -> str:
    return digest(data)  # BLAKE3, <hex>-b3


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "public"
    (root / "about").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "about" / "index.html").write_bytes(b"about")
    (root / "copy.html").write_bytes(b"about")
    return root


def test_every_file_with_its_hash(site):
    scanned = scan_site(site)
    files = scanned.manifest.files
    assert list(files) == ["about/index.html", "copy.html", "index.html"]
    assert files["index.html"].sha256 == sha(b"<h1>home</h1>") and files["index.html"].size == 13
    assert scanned.manifest.blobs == {sha(b"<h1>home</h1>"): 13, sha(b"about"): 5}
    assert Path(scanned.sources[sha(b"about")]).read_bytes() == b"about"


def test_symlinks_inside_are_followed(site):
    (site / "home.html").symlink_to("index.html")
    (site / "docs").symlink_to("about")  # a directory
    (site / "about" / "up.html").symlink_to("../index.html")
    (site / "loop").symlink_to(".")
    files = scan_site(site).manifest.files
    assert files["home.html"].sha256 == sha(b"<h1>home</h1>")
    assert files["about/up.html"].sha256 == sha(b"<h1>home</h1>")
    assert "docs/index.html" in files or "about/index.html" in files
    assert not any(p.startswith("loop/loop") for p in files)


@pytest.mark.parametrize("target", ["/etc/hostname", "../../outside.txt", "../../", "/"])
def test_symlinks_leading_out_are_refused(site, tmp_path, target):
    (tmp_path / "outside.txt").write_text("secret")
    (site / "about" / "evil").symlink_to(target)
    with pytest.raises(SiteError, match="leads outside the pushed directory"):
        scan_site(site)


def test_a_symlink_to_nothing_is_refused(site):
    (site / "dangling").symlink_to("nope.html")
    with pytest.raises(SiteError, match="does not exist"):
        scan_site(site)


def test_a_fifo_is_refused(site):
    os.mkfifo(site / "pipe")
    with pytest.raises(SiteError, match="not a regular file"):
        scan_site(site)


@pytest.mark.parametrize("name", ["back\\slash.html", "new\nline.html"])
def test_names_that_cannot_be_release_paths(site, name):
    (site / name).write_text("x")
    with pytest.raises(SiteError, match="this name cannot be pushed"):
        scan_site(site)


@pytest.mark.parametrize("limits, why", [
    (Limits(max_files=2), "more than 2 files.*--max-files"),
    (Limits(max_file_bytes=12), "index.html: 13 bytes, more than the limit of 12.*--max-file-size"),
    (Limits(max_total_bytes=22), "23 bytes in all.*--max-total-size"),
])
def test_limits(site, limits, why):
    with pytest.raises(SiteError, match=why):
        scan_site(site, limits)


def test_not_a_directory(tmp_path):
    with pytest.raises(SiteError, match="not a directory"):
        scan_site(tmp_path / "missing")
