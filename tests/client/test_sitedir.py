"""Reading a directory to push: paths, symlinks, limits."""

import os

from pathlib import Path

import pytest

from owncdn.client import sitedir
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


@pytest.mark.parametrize("name", ["back\\slash.html", "new\nline.html", "tab\there", "del\x7f", "about/esc\x1b.html",
                                  "about/\\", "x" * 200 + "\\"])
def test_names_that_cannot_be_release_paths(site, name):
    (site / name).write_text("x")
    with pytest.raises(SiteError, match="this name cannot be pushed") as refused:
        scan_site(site)
    assert str(site / name) in str(refused.value)


@pytest.mark.parametrize("name", [
    "nbsp\u00a0.html", "soft\u00adhyphen", "private\ue000", "c1\x85", "zero\u200bwidth", "\u2028line",  # not isprintable
    "ünïcode ß.html", "日本語.txt", "\U0001f600", "a" * 255, "d" * 200 + "/" + "é" * 127,  # long: checked alone
])
def test_names_that_are_release_paths_though_not_printable_or_long(site, name):
    """The walk checks a directory's names at once and falls back to check_path for
    each name when that check is unsure: the same paths pass."""
    (site / "about" / name).parent.mkdir(exist_ok=True)
    (site / "about" / name).write_bytes(b"odd")
    assert scan_site(site).manifest.files["about/" + name].sha256 == sha(b"odd")


def test_a_path_over_the_limit_is_refused_though_each_name_is_short(site):
    deep = site / "/".join(["d" * 200] * 6)
    deep.mkdir(parents=True)
    (deep / "x.html").write_text("x")
    with pytest.raises(SiteError, match="longer than 1024 bytes"):
        scan_site(site)


@pytest.mark.parametrize("limits, why", [
    (Limits(max_files=2), "more than 2 files.*--max-files"),
    (Limits(max_file_bytes=12), "index.html: 13 bytes, more than the limit of 12.*--max-file-size"),
    (Limits(max_total_bytes=22), "23 bytes in all.*--max-total-size"),
])
def test_limits(site, limits, why):
    with pytest.raises(SiteError, match=why):
        scan_site(site, limits)


def test_a_directory_with_no_file_is_refused_unless_allowed(tmp_path):
    (tmp_path / "public" / "assets").mkdir(parents=True)  # a build that made directories only
    with pytest.raises(SiteError, match="no files to push.*--allow-empty"):
        scan_site(tmp_path / "public")
    site = scan_site(tmp_path / "public", Limits(allow_empty=True))
    assert site.manifest.files == {}


def test_not_a_directory(tmp_path):
    with pytest.raises(SiteError, match="not a directory"):
        scan_site(tmp_path / "missing")


SIZES = [0, 1, 7, 1 << 20, (1 << 20) + 1, 3, 2_500_000, 5, 0, 64]


@pytest.mark.parametrize("ahead_files, ahead_bytes", [
    (32, 16 << 20),  # the defaults: every file of the site announced at once
    (2, 16 << 20),   # the window full by its count
    (32, 1),         # ... by its bytes: one file ahead at a time
    (0, 0),          # nothing ahead
])
def test_files_read_ahead_hash_as_read_one_by_one(tmp_path, monkeypatch, ahead_files, ahead_bytes):
    """Rule 5: whatever the read-ahead window, each file is hashed whole, once, in
    order; each file after the first is announced once, its first bytes up to the
    window's; empty files never (a length of 0 would announce the whole file)."""
    monkeypatch.setattr(sitedir, "AHEAD_FILES", ahead_files)
    monkeypatch.setattr(sitedir, "AHEAD_BYTES", ahead_bytes)
    advised = []
    monkeypatch.setattr(sitedir, "_advise", lambda fd, size: advised.append((os.readlink(f"/proc/self/fd/{fd}"), size)))
    root = tmp_path / "site"
    root.mkdir()
    contents = {f"f{i:02}": bytes([i]) * size for i, size in enumerate(SIZES)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    open_before = len(os.listdir("/proc/self/fd"))
    files = scan_site(root).manifest.files
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert {name: (e.sha256, e.size) for name, e in files.items()} == {
        name: (sha(data), len(data)) for name, data in contents.items()}
    expected = [(str(root / name), min(len(data), ahead_bytes)) for name, data in list(contents.items())[1:]
                if data and ahead_files and ahead_bytes]
    assert sorted(advised) == expected


def test_a_file_gone_after_the_walk_is_named_and_nothing_stays_open(site, monkeypatch):
    walk = sitedir._walk

    def walk_then_remove(*args):
        files = walk(*args)
        os.remove(site / "copy.html")
        return files

    monkeypatch.setattr(sitedir, "_walk", walk_then_remove)
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(SiteError, match=r"copy\.html: cannot read the file \(No such file"):
        scan_site(site)
    assert len(os.listdir("/proc/self/fd")) == open_before


def _tree(root: Path) -> None:
    """Plain directories (the fast path) next to ones it leaves to the loop: a symlink,
    a long name, a control character, an empty directory, a directory reached twice."""
    for d in ("a", "a/b", "a/b/c", "z", "empty", "links", "long"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(30):
        (root / "a" / f"f{i:02}.html").write_bytes(b"x" * i)
        (root / "a" / "b" / f"g{i}.css").write_bytes(b"y" * i)
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep")
    (root / "z" / "last").write_bytes(b"z")
    (root / "links" / "to-b").symlink_to("../a/b")  # a/b again, under another path
    (root / "links" / "file.html").write_bytes(b"f")
    (root / "long" / ("n" * 200)).mkdir()
    (root / "long" / ("n" * 200) / ("m" * 100)).write_bytes(b"long")  # a path past _SHORT: checked name by name


def test_the_plain_directories_fast_path_walks_as_the_loop_does(tmp_path, monkeypatch):
    root = tmp_path / "site"
    _tree(root)
    real = os.path.realpath(root)
    fast = [(rel, path, st.st_ino) for rel, path, st in sitedir._walk(str(root), real, Limits())]
    monkeypatch.setattr(sitedir, "_walk_plain", lambda *args: False)  # every directory entry by entry
    loop = [(rel, path, st.st_ino) for rel, path, st in sitedir._walk(str(root), real, Limits())]
    assert fast == loop
    rels = [rel for rel, _, _ in fast]
    assert f"long/{'n' * 200}/{'m' * 100}" in rels and "a/f29.html" in rels and "z/last" in rels
    # a/b is walked once, by the path that reached it first (links/to-b: the walk pops the last directory first)
    assert [rel for rel in rels if rel.endswith(("g0.css", "deep.txt"))] == ["links/to-b/c/deep.txt", "links/to-b/g0.css"]


@pytest.mark.parametrize("limit", [1, 30, 61])
def test_the_file_limit_holds_on_the_fast_path(tmp_path, limit):
    root = tmp_path / "site"
    _tree(root)
    with pytest.raises(SiteError, match="more than .* files"):
        sitedir._walk(str(root), os.path.realpath(root), Limits(max_files=limit))


def test_hidden_names_are_left_out_and_listed_and_not_walked_into(site, tmp_path):
    """Rule 10: a push of a project's root publishes neither its repository nor its secrets."""
    (site / ".git" / "objects").mkdir(parents=True)
    (site / ".git" / "config").write_text("[remote]")
    os.mkfifo(site / ".git" / "fsmonitor")  # refused if the walk went in (Rule 3)
    os.symlink("/etc", site / ".git" / "out")  # ... and so would this (Rule 2)
    (site / ".env").write_text("SECRET=1")
    (site / "about" / ".DS_Store").write_bytes(b"\0")
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_text("Contact: x")
    scanned = scan_site(site, Limits(max_files=4))  # the limit counts the files kept
    assert sorted(scanned.manifest.files) == [".well-known/security.txt", "about/index.html", "copy.html",
                                              "index.html"]
    assert scanned.left_out == [(".env", "hidden"), (".git/", "hidden"), ("about/.DS_Store", "hidden")]


def test_hidden_names_are_pushed_when_asked_for(site):
    (site / ".env").write_text("SECRET=1")
    (site / "about" / ".htaccess").write_text("x")
    scanned = scan_site(site, Limits(hidden=True))
    assert {".env", "about/.htaccess"} <= set(scanned.manifest.files) and scanned.left_out == []


def test_excluded_paths_are_left_out_and_listed(site):
    (site / "drafts").mkdir()
    (site / "drafts" / "post.md").write_text("draft")
    os.mkfifo(site / "drafts" / "pipe")  # not walked into
    (site / "about" / "app.js.map").write_text("{}")
    (site / "node_modules" / "x").mkdir(parents=True)
    (site / "node_modules" / "x" / "index.js").write_text("x")
    (site / "node_modules.html").write_text("a file: matched by no directory-only pattern")
    scanned = scan_site(site, Limits(exclude=("/drafts", "*.map", "node_modules/")))
    assert sorted(scanned.manifest.files) == ["about/index.html", "copy.html", "index.html", "node_modules.html"]
    assert sorted(scanned.left_out) == [("about/app.js.map", "*.map"), ("drafts/", "/drafts"),
                                        ("node_modules/", "node_modules/")]


def test_a_pattern_that_cannot_be_used_is_refused_before_anything_is_read(site):
    with pytest.raises(SiteError, match="--exclude '/a/../b'.*'\\.\\.'"):
        scan_site(site, Limits(exclude=("/a/../b",)))


def test_the_directorys_ignore_file_leaves_its_patterns_out_and_itself(site):
    """Rule 10: every push of the directory leaves out what its .owncdnignore names."""
    (site / ".owncdnignore").write_text("# not for the edges\n/drafts\n*.map\n")
    (site / "drafts").mkdir()
    os.mkfifo(site / "drafts" / "pipe")  # not walked into
    (site / "about" / "app.js.map").write_text("{}")
    for limits in (Limits(), Limits(hidden=True)):  # the file itself is never pushed
        scanned = scan_site(site, limits)
        assert sorted(scanned.manifest.files) == ["about/index.html", "copy.html", "index.html"]
        assert scanned.left_out == [(".owncdnignore", ".owncdnignore"), ("about/app.js.map", ".owncdnignore:3:*.map"),
                                    ("drafts/", ".owncdnignore:2:/drafts")]
    both = scan_site(site, Limits(exclude=("*.map",)))
    assert ("about/app.js.map", "*.map") in both.left_out  # --exclude decides last


def test_an_ignore_file_of_comments_only_is_still_left_out(site):
    (site / ".owncdnignore").write_text("# nothing yet\n")
    scanned = scan_site(site, Limits(hidden=True))
    assert ".owncdnignore" not in scanned.manifest.files and scanned.left_out == [(".owncdnignore", ".owncdnignore")]


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("*.map\n!\n"), r"\.owncdnignore:2: '!': '!' puts back"),
    (lambda p: p.write_text("../x\n"), r"\.owncdnignore:1: '\.\./x': .*'\.\.'"),
    (lambda p: p.write_bytes(b"\xff\xfe*.map\n"), "not UTF-8"),
    (lambda p: p.write_text("a\n" * (40 << 10)), "larger than 64 KiB"),
    (lambda p: p.mkdir(), "not a regular file"),
    (lambda p: os.symlink("/etc/hostname", p), "not a regular file"),
])
def test_an_ignore_file_that_cannot_be_used_refuses_the_push_naming_it(site, make, words):
    """Rule 11: a file meant to keep paths out is never skipped."""
    make(site / ".owncdnignore")
    with pytest.raises(SiteError, match=words) as exc:
        scan_site(site)
    assert str(exc.value).startswith(str(site / ".owncdnignore"))


def test_ignore_files_below_the_top_and_patterns_that_put_back(site):
    """Rules 10 and 11, leftout Rules 6 and 7: each directory's file applies below it,
    a later "!" puts back, and the files themselves are never pushed."""
    (site / ".owncdnignore").write_text("*.map\n!keep.map\n!.nojekyll\nbuild/*\n!build/keep.txt\n/drafts/\n")
    (site / ".nojekyll").write_text("")
    (site / ".env").write_text("SECRET=1")
    for name in ("app.js.map", "keep.map"):
        (site / "about" / name).write_text("{}")
    (site / "build").mkdir()
    for name in ("keep.txt", "other.txt"):
        (site / "build" / name).write_text("x")
    (site / "docs" / "api").mkdir(parents=True)
    (site / "docs" / ".owncdnignore").write_text("/draft.md\n*.tmp\n!/api/keep.map\n")
    for name in ("draft.md", "guide.md", "x.tmp", "api/draft.md", "api/keep.map", "api/old.map"):
        (site / "docs" / name).write_text("x")
    (site / "drafts").mkdir()
    (site / "drafts" / ".owncdnignore").write_text("../x\n")  # not read: the directory is left out
    scanned = scan_site(site)
    assert sorted(scanned.manifest.files) == [
        ".nojekyll", "about/index.html", "about/keep.map", "build/keep.txt", "copy.html", "docs/api/draft.md",
        "docs/api/keep.map", "docs/guide.md", "index.html"]
    assert scanned.left_out == [
        (".env", "hidden"), (".owncdnignore", ".owncdnignore"), ("about/app.js.map", ".owncdnignore:1:*.map"),
        ("build/other.txt", ".owncdnignore:4:build/*"), ("docs/.owncdnignore", ".owncdnignore"),
        ("docs/api/old.map", ".owncdnignore:1:*.map"), ("docs/draft.md", "docs/.owncdnignore:1:/draft.md"),
        ("docs/x.tmp", "docs/.owncdnignore:2:*.tmp"), ("drafts/", ".owncdnignore:6:/drafts/")]
    assert scan_site(site, Limits(exclude=("keep.map",))).manifest.files.keys().isdisjoint(
        {"about/keep.map", "docs/api/keep.map"})  # no file puts back what --exclude leaves out


def test_an_ignore_file_below_the_top_that_cannot_be_used_refuses_the_push_naming_it(site):
    (site / "docs").mkdir()
    (site / "docs" / ".owncdnignore").write_text("ok\n!\n")
    with pytest.raises(SiteError) as exc:
        scan_site(site, Limits(hidden=True))
    assert str(exc.value).startswith(str(site / "docs" / ".owncdnignore") + ":2: '!'")


def test_what_is_left_out_is_the_same_on_the_fast_path_and_the_loop(tmp_path, monkeypatch):
    root = tmp_path / "site"
    _tree(root)
    (root / "a" / ".hidden").mkdir()
    (root / "a" / ".hidden" / "x").write_text("x")
    (root / "a" / "f1.map").write_text("x")
    (root / "a" / "b" / ".owncdnignore").write_text("g1*.css\n!g12.css\n")
    real = os.path.realpath(root)
    runs = []
    for plain in (True, False):
        if not plain:
            monkeypatch.setattr(sitedir, "_walk_plain", lambda *args: False)
        left = []
        files = [rel for rel, _, _ in sitedir._walk(str(root), real, Limits(), sitedir.LeaveOut(False, ["*.map"]), left)]
        runs.append((files, sorted(left)))
    assert runs[0] == runs[1]
    assert ("a/.hidden/", "hidden") in runs[0][1] and ("a/f1.map", "*.map") in runs[0][1]
    b = "links/to-b/"  # a/b, walked once, by this path (see above)
    assert (b + "g13.css", b + ".owncdnignore:1:g1*.css") in runs[0][1] and b + "g12.css" in runs[0][0]
    assert (b + ".owncdnignore", ".owncdnignore") in runs[0][1]
    assert not any(rel.endswith(".map") or "/." in rel for rel in runs[0][0])


def test_a_redirects_file_at_the_top_is_pushed_once_its_rules_are_checked(site):
    (site / "_redirects").write_text("/old /new\n/app/* /app/index.html 200\n")
    found = scan_site(site)
    assert "_redirects" in found.manifest.files   # it travels with the release (the edges read it)


def test_a_redirects_file_the_edges_would_not_use_refuses_the_push_naming_its_lines(site, monkeypatch):
    (site / "_redirects").write_text("/ok /fine\n/store id=:id /blog/:id 301\n/a /b 3o1\n")
    read = []
    monkeypatch.setattr(sitedir, "_hash_files", lambda *a, **k: read.append(a) or [])
    with pytest.raises(SiteError) as refused:
        scan_site(site)
    message = str(refused.value)
    assert f"{site}/_redirects:2: conditions such as 'id=:id'" in message
    assert f"{site}/_redirects:3: expected a status" in message
    assert "--exclude /_redirects" in message and read == []   # before anything was hashed


def test_a_redirects_file_below_the_top_is_a_plain_file(site):
    (site / "about" / "_redirects").write_text("not rules at all\n")
    assert "about/_redirects" in scan_site(site).manifest.files


def test_a_headers_file_the_edges_would_not_use_refuses_the_push_naming_its_lines(site):
    (site / "_headers").write_text("/*\n  X-Frame-Options: DENY\n  ETag: mine\n")
    with pytest.raises(SiteError) as refused:
        scan_site(site)
    assert f"{site}/_headers:3: 'ETag' is derived from the file" in str(refused.value)
    assert "--exclude /_headers" in str(refused.value)
    (site / "_headers").write_text("/*\n  X-Frame-Options: DENY\n")
    assert "_headers" in scan_site(site).manifest.files
