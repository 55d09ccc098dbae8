"""Pushed content: `push`, `releases`, `promote` (and `rollback --service --release` in fleet_cmds).

`push` is carried out by ``push_run.run_push``; a plain `owncdn push` does not even
get here (``cli/entry.py`` starts it without Typer), this command parses the rest.

    owncdn push ./public --service blog [--env staging]
    owncdn releases --service blog
    owncdn rollback --service blog --release 3
    owncdn promote --service blog --from staging [--release 5] [--env production]
    owncdn blobs gc [--dry-run]

They talk to the control plane like the other fleet commands (`--control`,
`--token`, or the files `owncdn up` / `owncdn control` leave in the state dir).
"""

from __future__ import annotations

from pathlib import Path

import typer

from owncdn.cli.fleet_cmds import ControlOpt, EnvOpt, StateOpt, TokenOpt, _call, _fail, client

__all__ = ["activate", "promote", "register"]

FOLDED = 40  # `owncdn releases`: a longer comment or list of edges folds onto more lines (tables Rule 2)


def _size(text: str, flag: str) -> int:
    from owncdn.core.config.units import parse_byte_size

    try:
        return parse_byte_size(text)
    except ValueError as exc:
        _fail(f"{flag} {text!r}: {exc}")


def _human(n: float) -> str:
    from owncdn.cli.push_run import human

    return human(n)


def push(
    directory: Path = typer.Argument(..., help="The directory to push, e.g. ./public"),
    service: str = typer.Option(..., "--service", "-s", help="The push service (mode: push in cdn.yaml)."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
    max_files: int = typer.Option(100_000, min=1, help="Refuse a directory with more files than this."),
    max_file_size: str = typer.Option("2GiB", help="Refuse a file larger than this (e.g. 500MB, 2GiB)."),
    max_total_size: str = typer.Option("20GiB", help="Refuse a directory larger than this in all."),
    parallel: int = typer.Option(8, min=1, max=64, help="Uploads at the same time."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    hash_cache: bool = typer.Option(True, "--hash-cache/--no-hash-cache",
                                    help="Reuse the hashes of files unchanged since the last push "
                                         "(kept in ~/.cache/owncdn/hashes)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    allow_empty: bool = typer.Option(False, "--allow-empty",
                                     help="Push a directory with no file (a release answering 404 everywhere)."),
    hidden: bool = typer.Option(False, "--hidden",
                                help="Push hidden files and directories too (names beginning with '.', "
                                     "such as .git and .env; .well-known is always pushed)."),
    exclude: list[str] = typer.Option([], "--exclude", metavar="PATTERN",
                                      help="Leave out paths matching PATTERN (repeatable): '/drafts/**', "
                                           "'*.map' (no / before its end: at any depth; with one, as 'src/*.ts', "
                                           "anchored at the top, as in .gitignore), 'node_modules/' "
                                           "(a trailing / matches directories only). A .owncdnignore file holds "
                                           "such patterns for every push of its directory, one a line, as a "
                                           ".gitignore does ('!PATTERN' puts back); --exclude decides after it."),
    comment: str = typer.Option("", "--comment", "-m",
                                help="Why this release (kept with it, shown by `owncdn releases` and the dashboard)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Only say which paths the push would change and what it would upload; "
                                      "nothing is uploaded or created."),
    wait: float = typer.Option(0.0, "--wait", min=0, max=300,
                               help="Then wait up to this many seconds until every edge in contact serves "
                                    "the release; exit 1 naming those that failed or did not answer."),
) -> None:
    """Push DIRECTORY as a new release of SERVICE; every edge switches to it at once.

    Only files the CDN lacks are uploaded; every edge fetches what it lacks, then
    switches. A failed push changes nothing."""
    from owncdn.cli.push_run import PushArgs, run_push

    args = PushArgs(directory, service, env, control_url, token, state_dir, max_files,
                    _size(max_file_size, "--max-file-size"), _size(max_total_size, "--max-total-size"),
                    parallel, quiet, hash_cache, as_json, wait, allow_empty, dry_run, hidden, tuple(exclude),
                    comment)
    code = run_push(args)
    if code:
        raise typer.Exit(code)


def releases(
    service: str = typer.Option(..., "--service", "-s", help="The push service."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
    changes: int = typer.Option(None, "--changes", min=1, metavar="N",
                                help="Instead: the paths release N changed, added and removed against the release "
                                     "before it."),
    against: int = typer.Option(None, "--against", min=1, metavar="M",
                                help="With --changes: compare with release M instead of N-1."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object: the releases and the current one's status "
                                 "(with --changes: every path)."),
    number: int = typer.Option(None, "--release", "-r", min=1, metavar="N",
                               help="With --comment: the release whose comment it replaces."),
    comment: str = typer.Option(None, "--comment", "-m",
                                help="Instead: replace release N's comment ('' removes it), e.g. why it was "
                                     "rolled back."),
) -> None:
    """The releases of SERVICE, newest first: which is current and which edges serve it."""
    if comment is not None or number is not None:
        recomment(service, env, control_url, token, state_dir, number, comment)
        return
    if changes is not None:
        release_changes(service, env, control_url, token, state_dir, changes, against, as_json)
        return
    if against is not None:
        _fail("--against goes with --changes N")
    api = client(control_url, token, state_dir)
    rows = _call(api.releases, env, service)
    if as_json:  # the releases as the API lists them, and the current one's status
        import json

        current = next((r for r in rows if r["current"]), None)
        status = _call(api.release_status, env, service, current["number"]) if current is not None else None
        typer.echo(json.dumps({"env": env, "service": service, "releases": rows, "current_status": status}))
        return
    from rich.markup import escape

    from owncdn.cli import tables

    if not rows:
        typer.echo(f"{env}: {service} has no releases yet; `owncdn push DIR --service {service}` makes one")
        return
    table = tables.new(f"{env}: releases of {service}")
    for col in ("release", "current", "files", "size", "created (UTC)", "by", "served by", "kept", "comment"):
        table.add_column(col, max_width=FOLDED if col in ("served by", "comment") else None, overflow="fold")
    for r in rows:
        created = (r.get("created") or "")[:16].replace("T", " ")
        nodes = ", ".join(n["name"] for n in r["nodes"]) or "-"
        table.add_row(str(r["number"]), "*" if r["current"] else "", str(r["files"]), _human(r["bytes"]),
                      created, r.get("author") or "", nodes,
                      "pruned" if r.get("pruned") else "yes" if r.get("retained", True) else "no",
                      escape(r.get("comment") or ""))
    tables.show(table)
    current = next((r for r in rows if r["current"]), None)
    if current is not None:
        for line in _not_serving(_call(api.release_status, env, service, current["number"])):
            typer.echo(line)


def _not_serving(status: dict) -> list[str]:
    """The edges that failed the current release, are retrying to fetch it (with why),
    or have not reported on it yet, a line each."""
    number = status["number"]
    lines = [f"release {number} failed on {n['name']}: {n['reason']}" for n in status["failed"]]
    lines += [f"release {number} not served yet by {n['name']}" + (f" (retrying: {n['reason']})" if n.get("reason") else "")
              for n in status["pending"]]
    return lines


def recomment(service: str, env: str, control_url: str | None, token: str | None, state_dir: Path,
              number: int | None, comment: str | None) -> None:
    """`owncdn releases --release N --comment TEXT`: release N's comment replaced."""
    from owncdn.cli.push_run import comment_problem

    if number is None or comment is None:
        _fail("--release N and --comment TEXT go together: they replace release N's comment")
    problem = comment_problem(comment)
    if problem is not None:
        _fail(f"--comment: {problem}")
    done = _call(client(control_url, token, state_dir).set_release_comment, env, service, number, comment)
    typer.echo(f"{env}: {service} release {done['number']}: " + (f"comment {comment!r}" if comment else "no comment"))


def release_changes(service: str, env: str, control_url: str | None, token: str | None, state_dir: Path,
                    number: int, against: int | None, as_json: bool) -> None:
    """`owncdn releases --changes N`: what release N changed against release N-1 (or
    ``against``), as `owncdn push --dry-run` lists a push's (``push_dry`` Rule 4); release
    1 against nothing. A release whose manifest blob GC dropped cannot be compared."""
    from owncdn.cli.push_dry import marked_lines
    from owncdn.core.content.changes import path_changes
    from owncdn.core.content.manifest import parse_manifest

    base = against if against is not None else number - 1 or None
    api = client(control_url, token, state_dir)
    new = parse_manifest(_call(_manifest, api, env, service, number))
    old = parse_manifest(_call(_manifest, api, env, service, base)) if base is not None else None
    changed, added, removed = path_changes(old, new)
    unchanged = len(new.files) - len(changed) - len(added)
    if as_json:
        import json

        typer.echo(json.dumps({"env": env, "service": service, "release": number, "against": base,
                               "changed": changed, "added": added, "removed": removed, "unchanged": unchanged}))
        return
    since = f"release {base}" if base is not None else "nothing (the first release)"
    typer.echo("\n".join([f"{env}: {service} release {number} against {since}: {len(changed)} changed, "
                          f"{len(added)} added, {len(removed)} removed, {unchanged} unchanged"]
                         + marked_lines(changed, added, removed)))


def _manifest(api, env: str, service: str, number: int, verb: str = "compared") -> dict:
    """Release ``number``'s manifest; for a pruned one, exit 1 saying it cannot be
    ``verb`` (other errors go to ``_call``)."""
    from owncdn.client import ApiError

    try:
        return api.release_manifest(env, service, number)
    except ApiError as exc:
        if exc.code != "release_pruned":
            raise
        _fail(f"{env}: {service} release {number}: blob GC dropped its manifest (it was outside the "
              f"retention), so it cannot be {verb}")  # exits
        raise


def activate(service: str, number: int, env: str, control_url: str | None, token: str | None,
             state_dir: Path, wait: float = 0.0) -> None:
    """`owncdn rollback --service S --release N [--wait S]`: make release N current
    again; with ``wait``, follow the edges as a push does (an edge that dropped the
    release's blobs for room fetches them again)."""
    from owncdn.cli.push_run import follow, not_served, served_line

    api = client(control_url, token, state_dir)
    done = _call(api.activate_release, env, service, number)
    typer.echo(f"{env}: {service} serves release {done['number']} again")
    if wait:
        status = _call(follow, api, env, service, done["number"], wait)
        typer.echo(served_line(status), nl=False)
        problem = not_served(done["number"], status, wait)
        if problem is not None:
            _fail(problem)


def promote(
    service: str = typer.Option(..., "--service", "-s", help="The push service."),
    source: str = typer.Option(..., "--from", metavar="ENV", help="The environment whose release is promoted."),
    number: int = typer.Option(None, "--release", "-r", min=1, metavar="N",
                               help="Release N of --from (default: its current release)."),
    env: str = typer.Option("production", "--env", "-e", help="The environment it becomes a release of."),
    control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
    comment: str = typer.Option("", "--comment", "-m",
                                help="Why (default: 'promoted from ENV release N', and that release's comment)."),
    wait: float = typer.Option(0.0, "--wait", min=0, max=300,
                               help="Then wait up to this many seconds until every edge in contact serves it; "
                                    "exit 1 naming those that failed or did not answer."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Make release N of --from (what was checked on staging) the next one of --env.

    The very same files: nothing is read or uploaded, and the edges of --env switch to
    it as to a push."""
    from owncdn.cli.push_run import comment_problem, follow, not_served, served_line, status_fields
    from owncdn.core.content.manifest import parse_manifest

    if source == env:
        _fail(f"--from {source} is --env too: a release is promoted to another environment "
              "(`owncdn rollback --service S --release N` makes an earlier one current again)")
    problem = comment_problem(comment)
    if problem is not None:
        _fail(f"--comment: {problem}")
    api = client(control_url, token, state_dir)
    if number is None:
        current = _call(api.releases, source, service, 1, True)
        if not current:
            _fail(f"{source}: {service} has no current release to promote")
        number = current[0]["number"]
    manifest = parse_manifest(_call(_manifest, api, source, service, number, "promoted"))
    now = _call(api.releases, env, service, 1, True)
    if now and now[0]["id"] == manifest.id:
        _done(as_json, {"env": env, "service": service, "release": now[0]["number"], "from": source,
                        "from_release": number, "created": False},
              f"{env}: {service} release {now[0]['number']} is current and holds the same files as {source} "
              f"release {number}: nothing to do")
        return
    if not comment:
        origin = next((r for r in _call(api.releases, source, service, 1000) if r["number"] == number), {})
        comment = _promoted(source, number, origin.get("comment") or "")
    made = _call(_create, api, env, service, manifest, comment, f"{source}: {service} release {number}")
    status = _call(follow, api, env, service, made["number"], wait) if wait else None
    out = {"env": env, "service": service, "release": made["number"], "from": source, "from_release": number,
           "created": True, "files": made["files"], "bytes": made["bytes"]}
    text = (f"{env}: {service} release {made['number']} ({made['files']} files, {_human(made['bytes'])}), "
            f"promoted from {source} release {number}; nothing uploaded")
    _done(as_json, out | (status_fields(status) if status is not None else {}),
          text + ("\n" + served_line(status).rstrip("\n") if status is not None else ""))
    problem = not_served(made["number"], status, wait) if status is not None else None
    if problem is not None:
        _fail(problem)


def _promoted(source: str, number: int, comment: str) -> str:
    """The default comment of a promoted release, within ``MAX_COMMENT``."""
    from owncdn.cli.push_run import MAX_COMMENT

    why = f"promoted from {source} release {number}" + (f": {comment}" if comment else "")
    return why if len(why) <= MAX_COMMENT else why[:MAX_COMMENT - 3] + "..."


def _create(api, env: str, service: str, manifest, comment: str, what: str) -> dict:
    """A release of ``manifest`` in ``env``; exit 1 if blob GC deleted some of its blobs
    (other errors go to ``_call``)."""
    from owncdn.client import ApiError

    try:
        return api.create_release(env, service, manifest, comment)
    except ApiError as exc:
        if exc.code != "missing_blobs":
            raise
        _fail(f"{what}: blob GC deleted {len(exc.problems or [])} of its files (it was outside the retention); "
              "push that content again")  # exits
        raise


def _done(as_json: bool, out: dict, text: str) -> None:
    if as_json:
        import json

        typer.echo(json.dumps(out))
    else:
        typer.echo(text)


blobs_app = typer.Typer(help="The control plane's blob store of pushed files.", no_args_is_help=True)


@blobs_app.command("gc")
def blobs_gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be deleted."),
    control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Delete blobs no retained release needs; needs an admin token.

    The control plane also does this every --blob-gc-interval."""
    r = _call(client(control_url, token, state_dir).collect_blobs, dry_run)
    verb, pruned = "would delete" if r["dry_run"] else "deleted", r.get("pruned_releases", 0)
    typer.echo(f"{verb} {r['deleted']} of {r['stored']} blobs ({_human(r['freed_bytes'])}); kept {r['referenced']} "
               f"for {r['retained_releases']} retained releases (newest {r['keep']} per service) and {r['young']} "
               f"younger than {r['grace']:g} s" + (f"; {pruned} older releases {'would be' if r['dry_run'] else 'were'} "
                                                   "pruned (still listed, no longer activatable)" if pruned else "")
               + (f"; {r['partials_dropped']} partial uploads older than a day ({_human(r.get('partial_bytes', 0))}) "
                  f"{'would be' if r['dry_run'] else 'were'} removed" if r.get("partials_dropped") else ""))


def register(app: typer.Typer) -> None:
    app.command()(push)
    app.command()(releases)
    app.command()(promote)
    app.add_typer(blobs_app, name="blobs")
