"""Pushing a site from the command line: push, change one file, push again (one blob
moves), list releases, roll back; what is refused, and that a refused push changes nothing."""

import asyncio
import json
import os
import sys
import time

import pytest

from owncdn.client import hashcache
from owncdn.core.content.digest import digest
from owncdn.testing.fleet import Fleet

CDN = """version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    mode: push
  - name: pulled
    hostnames: [pulled.example.com]
    origins: [https://origin.example.com]
"""


async def owncdn(fleet: Fleet, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=fleet.admin_token)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "owncdn.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def blob_files(fleet: Fleet) -> set[str]:
    """The blobs the control plane stores (as files or in packs)."""
    return {name for name, _ in fleet.blobs.stored()}


def make_site(root):
    (root / "about").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "about" / "index.html").write_text("about us")
    (root / "style.css").write_text("body { color: black }")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # streamed in chunks


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "1MB"]])  # the lean start, and the Typer command
async def test_an_empty_directory_is_refused_and_the_release_stays(tmp_path, extra):
    site = tmp_path / "public"
    make_site(site)
    (tmp_path / "empty").mkdir()
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--max-file-size", "8MB")
        assert code == 0, err
        code, out, err = await owncdn(fleet, "push", str(tmp_path / "empty"), "--service", "blog", *extra)
        assert code == 1 and "no files to push" in err and "--allow-empty" in err, (out, err)
        code, out, _ = await owncdn(fleet, "releases", "--service", "blog")
        assert [line.split()[0] for line in out.splitlines() if line.split()[:1] == ["2"]] == []
        code, out, err = await owncdn(fleet, "push", str(tmp_path / "empty"), "--service", "blog", "--allow-empty", *extra)
        assert code == 0 and "release 2 (0 files, 0 B)" in out, (out, err)


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "10MB"]])  # the lean start, and the Typer command
async def test_a_push_comment_is_kept_and_listed(tmp_path, extra):
    """push Rule 14, releases Rule 16: `owncdn push -m` says why; `owncdn releases` shows it."""
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "-m", "[v1]", *extra)
        assert code == 0, err
        (site / "style.css").write_text("body { color: navy }")  # a second push: the one-request path
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--comment", "navy", *extra)
        assert code == 0, err
        (site / "index.html").write_text("<h1>again</h1>")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", *extra)
        assert code == 0, err
        releases = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert [(r["number"], r["comment"]) for r in releases] == [(3, ""), (2, "navy"), (1, "[v1]")]
        code, out, _ = await owncdn(fleet, "releases", "--service", "blog")
        assert code == 0 and "[v1]" in out and "navy" in out, out  # Rich markup escaped, not eaten
        (site / "new.html").write_text("not sent")
        for bad, says in (("two\nlines", "one line"), ("x" * 1001, "at most 1000")):
            code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "-m", bad, *extra)
            assert code == 1 and f"--comment: {says}" in err, err  # push_run Rule 11: before anything is sent
        assert await asyncio.to_thread(fleet.api.missing_blobs, [digest(b"not sent")]) == [digest(b"not sent")]


async def test_releases_changes_lists_what_a_release_changed(tmp_path):
    """push_cmds.release_changes: a release against the one before it, or another."""
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        assert (await owncdn(fleet, "push", str(site), "--service", "blog"))[0] == 0
        (site / "style.css").write_text("body { color: navy }")
        (site / "new.html").write_text("new")
        (site / "big.bin").unlink()
        assert (await owncdn(fleet, "push", str(site), "--service", "blog"))[0] == 0
        (site / "index.html").write_text("<h1>home, again</h1>")
        assert (await owncdn(fleet, "push", str(site), "--service", "blog"))[0] == 0

        code, out, err = await owncdn(fleet, "releases", "--service", "blog", "--changes", "2")
        assert code == 0, err
        assert out.splitlines() == ["production: blog release 2 against release 1: 1 changed, 1 added, 1 removed, "
                                    "2 unchanged", "  - big.bin", "  + new.html", "  ~ style.css"]
        code, out, _ = await owncdn(fleet, "releases", "--service", "blog", "--changes", "1")
        assert out.startswith("production: blog release 1 against nothing (the first release): 0 changed, 4 added")
        code, out, _ = await owncdn(fleet, "releases", "--service", "blog", "--changes", "3", "--against", "1",
                                    "--json")
        assert json.loads(out) == {"env": "production", "service": "blog", "release": 3, "against": 1,
                                   "changed": ["index.html", "style.css"], "added": ["new.html"],
                                   "removed": ["big.bin"], "unchanged": 1}
        code, _, err = await owncdn(fleet, "releases", "--service", "blog", "--changes", "9")
        assert code == 1 and "9" in err, err
        code, _, err = await owncdn(fleet, "releases", "--service", "blog", "--against", "1")
        assert code == 1 and "--changes N" in err, err

        from owncdn.control.blobgc import collect_blobs
        from owncdn.core.content.retention import Retention

        report = await asyncio.to_thread(collect_blobs, fleet.store, fleet.blobs, Retention(keep=2, grace=3600))
        assert report.pruned_releases == 1  # release 1
        code, _, err = await owncdn(fleet, "releases", "--service", "blog", "--changes", "2")
        assert code == 1 and "release 1: blob GC dropped its manifest" in err and "cannot be compared" in err, err


def test_the_commands_comment_limit_is_the_control_planes():
    from owncdn.cli.push_run import MAX_COMMENT
    from owncdn.control.api.releases import MAX_COMMENT as API_MAX_COMMENT

    assert MAX_COMMENT == API_MAX_COMMENT


async def test_push_change_one_file_push_again_releases_rollback(tmp_path):
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err
        assert "production: blog release 1 (4 files" in out and "uploaded 4 blob(s)" in out
        first = blob_files(fleet)
        assert len(first) == 4

        (site / "style.css").write_text("body { color: navy }")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err
        assert "release 2" in out and "uploaded 1 blob(s), 20 B" in out  # exactly the changed file
        assert len(blob_files(fleet) - first) == 1

        code, out, _ = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert "release 3" in out and "uploaded 0 blob(s)" in out

        code, out, _ = await owncdn(fleet, "releases", "--service", "blog")
        assert code == 0
        lines = [line for line in out.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
        assert [line.split()[0] for line in lines] == ["3", "2", "1"]
        assert "*" in lines[0] and "not served yet" not in out

        store = fleet.store   # an edge in contact that cannot fetch release 3, and one that failed it
        full = await asyncio.to_thread(store.register_node, "edge-full", "edge", "fra", "production", "192.0.2.9")
        bad = await asyncio.to_thread(store.register_node, "edge-bad", "edge", "fra", "production", "192.0.2.8")
        for node in (full, bad):
            await asyncio.to_thread(store.node_contact, node.id)
        await asyncio.to_thread(store.report_node_release, full.id, "blog", 3, "retrying", "no space left on this edge's disk")
        await asyncio.to_thread(store.report_node_release, bad.id, "blog", 3, "failed", "blob 1f2e did not match")
        code, out, _ = await owncdn(fleet, "releases", "--service", "blog")
        assert code == 0
        assert "release 3 failed on edge-bad: blob 1f2e did not match" in out
        assert "release 3 not served yet by edge-full (retrying: no space left on this edge's disk)" in out
        code, out, _ = await owncdn(fleet, "releases", "--service", "blog", "--json")
        listed = json.loads(out)
        assert code == 0 and [r["number"] for r in listed["releases"]] == [3, 2, 1]
        assert listed["current_status"]["number"] == 3
        assert [(n["name"], n["reason"]) for n in listed["current_status"]["failed"]] == [("edge-bad", "blob 1f2e did not match")]

        code, out, err = await owncdn(fleet, "rollback", "--service", "blog", "--release", "1")
        assert (code, out.strip()) == (0, "production: blog serves release 1 again"), err
        releases = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert [r["number"] for r in releases if r["current"]] == [1]
        await asyncio.to_thread(store.report_node_release, full.id, "blog", 2, "retrying", "no space left")
        code, out, err = await owncdn(fleet, "rollback", "--service", "blog", "--release", "2", "--wait", "1")
        assert code == 1 and "production: blog serves release 2 again" in out and "served by 0 edge(s)" in out
        assert "release 2 is current, but not served after 1s by edge-full (retrying: no space left)" in err

        code, _, err = await owncdn(fleet, "rollback", "--service", "blog")
        assert code == 1 and "--service and --release together" in err
        code, _, err = await owncdn(fleet, "rollback")
        assert code == 1 and "--to N" in err


async def test_refused_pushes_change_nothing(tmp_path):
    site = tmp_path / "public"
    make_site(site)
    (tmp_path / "secret.txt").write_text("not for the CDN")
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err

        (site / "about" / "leak.txt").symlink_to("../../secret.txt")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 1 and "leak.txt: a symlink to '../../secret.txt', which leads outside" in err
        (site / "about" / "leak.txt").unlink()

        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--max-files", "3")
        assert code == 1 and "more than 3 files" in err
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--max-file-size", "1MB")
        assert code == 1 and "big.bin" in err and "--max-file-size" in err
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "pulled")
        assert code == 1 and "set mode: push" in err and "previous release is still current" in err
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "nope")
        assert code == 1 and "no service 'nope'" in err
        for output in (err,):
            assert "Traceback" not in output

        releases = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert [(r["number"], r["current"]) for r in releases] == [(1, True)]


# -- the lean start of `owncdn push` (cli/entry.py, cli/push_run.py) --------------------------

def test_the_lean_parser_takes_plain_pushes_and_leaves_the_rest_to_typer():
    from pathlib import Path

    from owncdn.cli import fleet_cmds
    from owncdn.cli.push_run import DEFAULT_CONTROL, DEFAULT_STATE, parse_lean

    assert (DEFAULT_CONTROL, Path(DEFAULT_STATE)) == (fleet_cmds.DEFAULT_CONTROL, fleet_cmds.DEFAULT_STATE)
    args = parse_lean(["./public", "-s", "blog", "--env=staging", "--control", "http://c:1", "--token", "t",
                       "--state-dir", "st", "--max-files", "7", "--parallel=3", "-q", "--no-hash-cache",
                       "--json", "--wait", "12.5"])
    assert (args.directory, args.service, args.env, args.control, args.token, args.state_dir) == (
        "./public", "blog", "staging", "http://c:1", "t", "st")  # strings: the lean start imports no pathlib
    assert (args.max_files, args.parallel, args.quiet, args.hash_cache, args.as_json, args.wait) == (
        7, 3, True, False, True, 12.5)
    assert parse_lean(["d", "--service", "blog"]).hash_cache is True
    assert parse_lean(["d", "--service", "blog"]).allow_empty is False
    assert parse_lean(["d", "--service", "blog", "--allow-empty"]).allow_empty is True
    assert (parse_lean(["d", "--service", "blog"]).hidden, parse_lean(["d", "--service", "blog"]).exclude) == (False, ())
    many = parse_lean(["d", "--service", "blog", "--hidden", "--exclude", "*.map", "--exclude=/drafts/**"])
    assert (many.hidden, many.exclude) == (True, ("*.map", "/drafts/**"))
    assert parse_lean(["d", "--service", "blog"]).comment == ""
    assert parse_lean(["d", "--service", "blog", "-m", "v1.2: a fix"]).comment == "v1.2: a fix"
    assert parse_lean(["d", "--service", "blog", "--comment=why"]).comment == "why"
    for argv in (["--help"], ["d", "--service", "blog", "--help"], ["d"], ["d", "e", "--service", "b"],
                 ["d", "--service"], ["d", "--service", "b", "--max-file-size", "1MB"],
                 ["d", "--service", "b", "--parallel", "0"], ["d", "--service", "b", "--max-files", "x"],
                 ["d", "--service", "b", "--wait", "-1"], ["d", "--service", "b", "--bogus"],
                 ["d", "--service", "b", "--json=yes"], ["d", "--service", "b", "--exclude"],
                 ["d", "--service", "b", "--hidden=yes"], ["d", "--service", "b", "-m"]):
        assert parse_lean(argv) is None, argv


async def test_a_plain_push_starts_without_typer_httpx_or_pydantic_and_can_wait(tmp_path):
    # nor http.client / email / ssl (client/http11.py), dataclasses / inspect, orjson, typing, pathlib, urllib
    # or the idna codec (each a few ms)
    site = tmp_path / "public"
    make_site(site)
    written = time.monotonic()
    # the command ends with os._exit (entry.py Rule 3): what it imported is read from -X importtime
    heavy = {"typer", "click", "rich", "httpx", "pydantic", "fastapi", "email", "ssl", "dataclasses", "orjson",
             "inspect", "typing", "http.client", "encodings.idna", "pathlib", "urllib"}
    probe = ("import sys\n"
             "sys.argv = ['owncdn', *sys.argv[1:]]\n"
             "from owncdn.cli.entry import main\n"
             "sys.exit(main())\n")
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=fleet.admin_token,
                   XDG_CACHE_HOME=str(tmp_path / "cache"))
        await asyncio.sleep(hashcache.RACY_NS / 1e9 + 0.1 - (time.monotonic() - written))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-X", "importtime", "-c", probe, "push", str(site), "--service", "blog", "--json",
            "--wait", "5", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        imported = {line.rpartition("|")[2].strip() for line in err.decode().splitlines() if line.startswith("import time:")}
        assert "owncdn.client.pushapi" in imported
        assert {m for m in imported if m in heavy or m.split(".")[0] in heavy} == set()  # none of them
        assert "threading" in imported and not {"concurrent.futures", "logging"} & imported  # uploads in plain threads
        assert not {"json", "re", "enum"} & {m.split(".")[0] for m in imported}  # bodies written without json (pushapi Rule 5)
        result = json.loads(out)
        assert (result["release"], result["files"], result["serving"], result["failed"], result["pending"]) == (
            1, 4, [], [], [])

        # one file changed (the hash cache answers for the rest: the site was written more than its racy
        # window before the first push): the release and its blob in one request, nor threading or
        # concurrent.futures
        (site / "style.css").write_text("body { color: red }")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-X", "importtime", "-c", probe, "push", str(site), "--service", "blog", "--json",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        imported = {line.rpartition("|")[2].strip() for line in err.decode().splitlines() if line.startswith("import time:")}
        assert "owncdn.client.pushapi" in imported
        assert {m for m in imported if m in heavy | {"threading", "concurrent", "logging"} or m.split(".")[0] in heavy} == set()
        # nor json, re, enum, hashlib (OpenSSL), socket, selectors or collections (push_run Rule 8: ~10 ms together)
        lean = {"json", "re", "enum", "hashlib", "_hashlib", "socket", "selectors", "collections", "functools"}
        assert {m for m in imported if m.split(".")[0] in lean} == set()
        assert {"_json", "_socket", "blake3"} <= imported and {"_sha256", "_sha2"} & imported  # their C parts
        assert (json.loads(out)["release"], json.loads(out)["blobs_uploaded"]) == (2, 1)

        code, out, err = await owncdn(fleet, "push", "--help")  # the Typer command still documents it
        assert code == 0 and "--wait" in out and "--max-file-size" in out
        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--parallel", "0")
        assert code == 2 and "--parallel" in err  # Typer's own parse error


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "10MB"]])  # the lean start, and the Typer command
async def test_output_to_a_reader_that_went_away_ends_quietly_and_the_push_stands(tmp_path, extra):
    """`owncdn push ... | head -1` (entry.py Rule 4): its stdout a pipe already closed."""
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=fleet.admin_token,
                   XDG_CACHE_HOME=str(tmp_path / "cache"))
        read, write = os.pipe()
        os.close(read)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "owncdn.cli", "push", str(site), "--service", "blog", *extra, env=env,
                stdout=write, stderr=asyncio.subprocess.PIPE)
        finally:
            os.close(write)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert (proc.returncode, err.decode()) == (1, "")
        assert fleet.store.current_release_number(fleet.env, "blog") == 1


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "10MB"]])  # the lean start, and the Typer command
async def test_a_dry_run_says_what_would_change_and_upload_and_changes_nothing(tmp_path, extra):
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--dry-run", "--json", *extra)
        assert code == 0, err
        dry = json.loads(out)
        assert (dry["dry_run"], dry["current"], dry["changed"], dry["removed"]) == (True, None, [], [])
        assert dry["added"] == ["about/index.html", "big.bin", "index.html", "style.css"]
        assert (dry["blobs_to_upload"], dry["bytes_to_upload"]) == (4, dry["bytes"])
        assert fleet.store.current_release_number(fleet.env, "blog") is None and blob_files(fleet) == set()

        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err
        stored = blob_files(fleet)
        (site / "index.html").write_text("<h1>home, again</h1>")
        (site / "news.html").write_text("news")
        (site / "style.css").unlink()
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "-n", "--json", *extra)
        assert code == 0, err
        dry = json.loads(out)
        assert (dry["current"], dry["changed"], dry["added"], dry["removed"], dry["unchanged"]) == (
            1, ["index.html"], ["news.html"], ["style.css"], 2)
        assert (dry["blobs_to_upload"], dry["bytes_to_upload"]) == (2, len("<h1>home, again</h1>") + len("news"))
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--dry-run", *extra)
        assert code == 0, err
        assert out.splitlines()[0] == "production: blog: dry run, nothing was uploaded or changed"
        assert "against release 1 (current): 1 changed, 1 added, 1 removed, 2 unchanged" in out
        assert "  ~ index.html\n  + news.html\n  - style.css\n" in out
        assert "a push would upload 2 blob(s), 24 B (of 4 files, " in out
        assert fleet.store.current_release_number(fleet.env, "blog") == 1 and blob_files(fleet) == stored

        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blog")  # release 2, then back to 1
        assert code == 0, err
        code, _, err = await owncdn(fleet, "rollback", "--service", "blog", "--release", "1")
        assert code == 0, err
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "-n", "--json", *extra)
        assert code == 0, err
        assert (json.loads(out)["current"], json.loads(out)["changed"]) == (1, ["index.html"])  # the current, not the newest

        code, _, err = await owncdn(fleet, "push", str(site), "--service", "blgo", "--dry-run", *extra)
        assert code == 1 and "no service 'blgo'" in err and "Traceback" not in err


async def test_a_dry_run_refuses_what_a_push_refuses(tmp_path):
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        cases = (("pulled", [], "has mode 'pull'; set mode: push"), ("nope", [], "its services: blog, pulled"),
                 ("blog", ["--env", "prodution"], "environment 'prodution' has no config version yet"))
        for service, env, says in cases:
            code, _, err = await owncdn(fleet, "push", str(site), "--service", service, *env, "--dry-run")
            assert code == 1 and says in err, err
        assert blob_files(fleet) == set()
        for service, env, says in cases:  # the push's own words
            code, _, err = await owncdn(fleet, "push", str(site), "--service", service, *env)
            assert code == 1 and says in err, err


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "10MB"]])  # the lean start, and the Typer command
async def test_hidden_and_excluded_paths_are_left_out_and_said(tmp_path, extra):
    """sitedir Rule 10, push_run Rule 9: `owncdn push .` of a project publishes neither .git nor .env."""
    site = tmp_path / "public"
    make_site(site)
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    (site / ".env").write_text("SECRET=hunter2")
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_text("Contact: mailto:x@example.com")
    (site / "about" / "app.js.map").write_text("{}")
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", *extra)
        assert code == 0, err
        assert "left out 2 hidden paths: .env, .git/ (--hidden pushes them)\n" in out
        assert "matching --exclude" not in out
        files = set(fleet.store.get_release(fleet.env, "blog", 1).manifest["files"])
        assert ".well-known/security.txt" in files and not {".env", ".git/config"} & files

        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--exclude", "*.map",
                                      "--exclude", "/big.bin", "--json", *extra)
        assert code == 0, err
        result = json.loads(out)
        assert sorted(result["left_out"]) == [".env", ".git/", "about/app.js.map", "big.bin"]
        files = set(fleet.store.get_release(fleet.env, "blog", 2).manifest["files"])
        assert not {"about/app.js.map", "big.bin"} & files and "index.html" in files

        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--hidden", "-n", *extra)
        assert code == 0, err
        assert "+ .env" in out and "+ .git/config" in out and "left out" not in out

        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--exclude", "", *extra)
        assert code == 1 and "--exclude '': an empty pattern" in err and "still current" not in out
        assert fleet.store.current_release_number(fleet.env, "blog") == 2


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "10MB"]])  # the lean start, and the Typer command
async def test_the_rules_files_of_a_site_are_checked_and_said(tmp_path, extra):
    """sitedir Rule 12: _redirects and _headers go with the release, checked first."""
    site = tmp_path / "public"
    make_site(site)
    (site / "_redirects").write_text("/old /about 301\n/p/:slug /posts/:slug\n")
    (site / "_headers").write_text("/*\n  X-Frame-Options: DENY\n")
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", *extra)
        assert code == 0, err
        assert "rules that go with this release: _redirects (2 rules), _headers (1 rule)\n" in out
        files = set(fleet.store.get_release(fleet.env, "blog", 1).manifest["files"])
        assert {"_redirects", "_headers"} <= files
        (site / "_headers").write_text("/*\n  ETag: mine\n")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--json", *extra)
        assert code == 1 and "_headers:2: 'ETag' is derived from the file" in err
        assert fleet.store.current_release_number(fleet.env, "blog") == 1
        (site / "_headers").unlink()
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--json", *extra)
        assert code == 0 and json.loads(out)["rules"] == {"_redirects": 2}


@pytest.mark.parametrize("extra", [[], ["--max-file-size", "10MB"]])  # the lean start, and the Typer command
async def test_the_directorys_ignore_file_is_followed_and_said(tmp_path, extra):
    """sitedir Rules 10-11, push_run Rule 9: every push of the directory leaves out what its
    .owncdnignore names, says so, and a line it cannot use refuses the push."""
    site = tmp_path / "public"
    make_site(site)
    (site / "drafts").mkdir()
    (site / "drafts" / "next.html").write_text("not yet")
    (site / "about" / "app.js.map").write_text("{}")
    (site / ".owncdnignore").write_text("# kept off the edges\n/drafts/\n*.map\n")
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", *extra)
        assert code == 0, err
        assert "left out 3 paths as .owncdnignore says: .owncdnignore, about/app.js.map, drafts/\n" in out
        assert "hidden" not in out
        files = set(fleet.store.get_release(fleet.env, "blog", 1).manifest["files"])
        assert "index.html" in files and not {"drafts/next.html", "about/app.js.map", ".owncdnignore"} & files

        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "-n", "--json", *extra)
        assert code == 0, err
        assert sorted(json.loads(out)["left_out"]) == [".owncdnignore", "about/app.js.map", "drafts/"]

        # leftout Rules 6-7: a later "!" puts back; a directory's own file applies below it
        (site / ".owncdnignore").write_text("*.map\n!about/app.js.map\n")
        (site / "drafts" / ".owncdnignore").write_text("/next.html\n")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", *extra)
        assert code == 0, err
        assert "left out 3 paths as .owncdnignore says: .owncdnignore, drafts/.owncdnignore, drafts/next.html\n" in out
        files = set(fleet.store.get_release(fleet.env, "blog", 2).manifest["files"])
        assert "about/app.js.map" in files and not {"drafts/next.html", "drafts/.owncdnignore"} & files

        (site / ".owncdnignore").write_text("*.map\n!\n")
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", *extra)
        assert code == 1 and ".owncdnignore:2: '!': '!' puts back" in err, err
        assert fleet.store.current_release_number(fleet.env, "blog") == 2


async def test_a_large_push_shows_a_hashing_bar_then_an_uploading_one(tmp_path, monkeypatch):
    """push_run Rule 4: on a terminal, a bar from the walk's end (what is left to hash),
    then one for the upload once it is known (push Rule 13), whose first report (what was
    sent while hashing) is set rather than counted for the speed."""
    import io

    from rich.progress import Progress

    from owncdn.cli import push_run

    site = tmp_path / "public"
    make_site(site)  # 3 MB in 4 files
    monkeypatch.setattr(push_run, "HASH_BAR_BYTES", 1 << 20)
    monkeypatch.setattr("owncdn.client.push.INLINE_BLOBS", 0)  # streamed: uploads while it hashes

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    events, names = [], {}
    add, remove, reset, advance = Progress.add_task, Progress.remove_task, Progress.reset, Progress.advance

    def add_task(self, description, *args, **kwargs):
        task_id = add(self, description, *args, **kwargs)
        names[task_id] = description
        events.append(("add", description, kwargs.get("total")))
        return task_id

    def remove_task(self, task_id):
        events.append(("done", names[task_id], self._tasks[task_id].completed))
        remove(self, task_id)

    def reset_task(self, task_id, **kwargs):
        events.append(("set", names[task_id], kwargs["completed"]))
        reset(self, task_id, **kwargs)

    def advance_task(self, task_id, n):
        events.append(("sample", names[task_id], n))
        advance(self, task_id, n)

    for name, fn in (("add_task", add_task), ("remove_task", remove_task), ("reset", reset_task),
                     ("advance", advance_task)):
        monkeypatch.setattr(Progress, name, fn)
    monkeypatch.setattr("sys.stderr", Terminal())
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        args = push_run.PushArgs(str(site), "blog", control=fleet.url, token=fleet.admin_token,
                                 state_dir=str(tmp_path), hash_cache=False)
        assert await asyncio.to_thread(push_run.run_push, args) == 0
    total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    assert [e for e in events if e[0] in ("add", "done")] == [
        ("add", "hashing", total), ("done", "hashing", total), ("add", "uploading", total)]
    hashing = [n for kind, name, n in events if name == "hashing" and kind == "sample"]
    assert sorted(hashing) == sorted(p.stat().st_size for p in site.rglob("*") if p.is_file())
    uploading = [(kind, n) for kind, name, n in events if name == "uploading" and kind in ("set", "sample")]
    assert uploading[0][0] == "set" and [kind for kind, _ in uploading[1:]] == ["sample"] * (len(uploading) - 1)
    assert sum(n for _, n in uploading) == total


async def test_a_push_stopped_with_ctrl_c_says_so_and_the_next_sends_only_the_rest(tmp_path):
    """push_run Rule 12, push Rule 15: Ctrl-C mid-upload exits 130 with one line, the
    control plane keeps what came of the large file, and pushing again sends the rest."""
    import signal

    from tests.client.test_push_resume import CuttingProxy

    site = tmp_path / "public"
    make_site(site)
    big = os.urandom(24 << 20)
    (site / "release.bin").write_bytes(big)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        proxy = CuttingProxy(fleet.port, after=1 << 40, pace=0.002)  # cuts nothing; about 30 MB/s at most
        env = dict(os.environ, OWNCDN_CONTROL=proxy.url, OWNCDN_TOKEN=fleet.admin_token)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "owncdn.cli", "push", str(site),
                                                    "--service", "blog", env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        deadline = time.monotonic() + 30
        while proxy.carried < (8 << 20) + (3 << 20) and time.monotonic() < deadline:  # big.bin and a part of it
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        proxy.close()
        assert proc.returncode == 130, (out, err)
        assert err.decode().strip() == ("owncdn: stopped before the release was created: the previous release is "
                                        "still current; what was uploaded is kept, so pushing again sends only the "
                                        "rest"), err
        assert await asyncio.to_thread(fleet.api.releases, "production", "blog") == []
        deadline = time.monotonic() + 10
        while not fleet.blobs.partials.held([digest(big)]) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        kept = fleet.blobs.partials.held([digest(big)]).get(digest(big), 0)
        assert kept >= 1 << 20
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog")
        assert code == 0, err
        from owncdn.cli.push_run import human

        assert out.splitlines()[1] == (f"resumed: {human(kept)} the control plane kept from an upload that broke "
                                       "were not sent again"), out
        releases = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert [r["number"] for r in releases] == [1]
        assert b"".join(fleet.blobs.read(digest(big))) == big


async def test_promote_makes_a_staging_release_the_next_production_one_without_uploading(tmp_path):
    """push_cmds.promote: the very files checked on staging, not the directory as it is now."""
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=1) as fleet:
        version = await fleet.apply(CDN)
        for other in ("staging", "qa"):
            await asyncio.to_thread(fleet.api.add_version, other, CDN)
        await fleet.wait_applied(version)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--env", "staging", "-m", "v1 rc")
        assert code == 0 and "staging: blog release 1" in out, err
        (site / "index.html").write_text("<h1>changed after staging was checked</h1>")
        stored = blob_files(fleet)

        code, out, err = await owncdn(fleet, "promote", "--service", "blog", "--from", "staging", "--wait", "30")
        assert code == 0, err
        assert out.startswith("production: blog release 1 (4 files, ") and "promoted from staging release 1; nothing uploaded" in out
        assert "served by 1 edge(s)" in out
        assert blob_files(fleet) == stored
        staged = await asyncio.to_thread(fleet.api.release_manifest, "staging", "blog", 1)
        assert await asyncio.to_thread(fleet.api.release_manifest, "production", "blog", 1) == staged
        [row] = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert row["comment"] == "promoted from staging release 1: v1 rc" and row["current"]
        response = await fleet.get(0, "/", host="blog.example.com")
        assert response.status == 200 and response.body == b"<h1>home</h1>"

        code, out, err = await owncdn(fleet, "promote", "--service", "blog", "--from", "staging", "--json")
        assert code == 0 and json.loads(out) == {"env": "production", "service": "blog", "release": 1,
                                                 "from": "staging", "from_release": 1, "created": False}, err
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "--env", "staging")
        assert code == 0, err
        code, out, err = await owncdn(fleet, "promote", "-s", "blog", "--from", "staging", "-r", "2", "-m", "go",
                                      "--json")
        assert code == 0 and json.loads(out)["release"] == 2, err
        assert (await asyncio.to_thread(fleet.api.releases, "production", "blog"))[0]["comment"] == "go"

        for args, says in ((["--from", "production"], "is --env too"), (["--from", "staging", "--release", "9"], "9"),
                           (["--from", "qa"], "qa: blog has no current release"),
                           (["--from", "nowhere"],
                            "environment 'nowhere' has no config version yet (those with one: production, qa, staging)")):
            code, out, err = await owncdn(fleet, "promote", "--service", "blog", *args)
            assert code == 1 and says in err, (args, out, err)
        assert [r["number"] for r in await asyncio.to_thread(fleet.api.releases, "production", "blog")] == [2, 1]


async def test_a_release_comment_is_replaced_from_the_command_line(tmp_path):
    """`owncdn releases --release N --comment TEXT` (releases Rule 16)."""
    site = tmp_path / "public"
    make_site(site)
    async with Fleet(tmp_path / "fleet", edges=0) as fleet:
        await fleet.apply(CDN)
        code, out, err = await owncdn(fleet, "push", str(site), "--service", "blog", "-m", "v1 (typo)")
        assert code == 0, err
        code, out, err = await owncdn(fleet, "releases", "-s", "blog", "-r", "1", "-m", "v1: rolled back, broken CSS")
        assert code == 0 and out == "production: blog release 1: comment 'v1: rolled back, broken CSS'\n", err
        [row] = await asyncio.to_thread(fleet.api.releases, "production", "blog")
        assert row["comment"] == "v1: rolled back, broken CSS" and row["current"]
        for args, says in ((["-r", "1"], "go together"), (["-m", "x"], "go together"),
                           (["-r", "2", "-m", "x"], "no release 2"), (["-r", "1", "-m", "a\tb"], "one line")):
            code, out, err = await owncdn(fleet, "releases", "-s", "blog", *args)
            assert code == 1 and says in err, (args, out, err)
