"""What `owncdn push` does, and its lean start (no Typer, Rich, httpx or pydantic; nor
http.client, dataclasses, orjson, typing, pathlib or urllib, a few milliseconds each:
paths are strings here).

    owncdn push ./public --service blog [--env E] [--wait 60] [--json]

`owncdn` starts in ``cli/entry.py``. For `push` it calls ``lean_main(argv)`` here
first: importing the whole Typer application costs several times what a push of one
changed file takes in all.

Rules:
1. ``run_push(PushArgs)`` is the push command's one implementation; the Typer command
   (``push_cmds.push``, which gives `--help`, completion and parse errors) builds the
   same ``PushArgs`` and calls it.
2. ``lean_main`` parses only plain use: the directory, ``--service``/``-s``,
   ``--env``/``-e``, ``--control``, ``--token``, ``--state-dir``, ``--max-files``,
   ``--parallel``, ``--quiet``/``-q``, ``--hash-cache``/``--no-hash-cache``,
   ``--allow-empty``, ``--hidden``, ``--exclude`` (as often as wanted), ``--comment``/``-m``, ``--dry-run``
   (``cli/push_dry.py``), ``--json`` and ``--wait``, as ``--opt value`` or ``--opt=value``. Anything else
   (``--help``, an unknown option, a value it cannot read, the byte-size limits, whose
   parser lives with the config model) returns None, and the Typer command parses and
   reports as always.
3. Where the control plane is and which token to use: ``--control`` /
   ``OWNCDN_CONTROL`` and ``--token`` / ``OWNCDN_TOKEN``, else the files `owncdn up`
   and `owncdn control` leave in the state directory, as for every fleet command.
4. The progress bar (Rich, on a terminal, without ``--quiet``) is imported only when
   there is something to upload, or ``HASH_BAR_BYTES`` or more to read: a "hashing" bar
   then runs from the walk's end until the upload is known (push Rule 13), and an
   "uploading" bar from then on. Its first report (a streamed push's: everything sent
   while the directory was hashed, push Rule 6) sets the bar without counting for its
   speed, which Rich averages over the samples of the last 30 s: 600 MB pushed to
   `owncdn up` from a cold disk (two runs) ended showing 207 MB/s with that lump as a
   sample, 182 without, the rate of its last 150 MB.
5. With ``--wait S`` the command returns once every edge in contact serves the
   release (or failed it), waiting at most S seconds (``GET .../status?wait=``, in
   steps of ``FOLLOW_STEP`` seconds: an edge retrying after a full disk is told on
   stderr as soon as it says so); it
   exits 1 naming the edges that failed or do not serve it yet, with what each said it
   is retrying after (a full disk: ``releasesync`` Rule 3). Edges whose event stream
   ended (stopped, killed) are not waited for: they are named as not serving, and
   the command still exits 0 (they catch up when they return). The release is current
   either way.
6. The hash cache is written in a thread once the release is created (or the push
   failed after reading the directory), so not between the scan and the request;
   the command ends after it is written.
7. The lean start turns the cyclic garbage collector off: a push makes next to no
   reference cycles and its process ends with it, and the collector's passes over the
   hash cache's and the manifest's objects took about 2 ms of the 33-35 ms a one-file
   push of the Python docs spends in the command itself (1,065 files, median of 40).
8. A push imports none of ``json``, ``re`` (but for ``--exclude`` or ``.owncdnignore`` patterns) or ``enum``
   (``client/pushapi.py`` Rule 5); one the hash cache answered for none of ``hashlib``,
   ``socket`` or ``collections`` either (their C parts where it needs them: ``_json``,
   ``_sha256``, ``_socket``; together about 10 ms of the command's start);
   ``tests/cli/test_cli_push.py`` checks it.
9. What the push left out of the directory (``sitedir`` Rule 10) is said after the
   result: hidden paths in one line (with the flag that pushes them), paths matching
   ``--exclude`` in another, those its ``.owncdnignore`` files leave out (and those
   files) in a third, each naming the first ``LEFT_OUT_SHOWN``; ``--json``
   lists every one (``left_out``). A push that leaves out nothing says nothing more.
   The ``_redirects`` and ``_headers`` files that go with the release (``sitedir`` Rule
   12) are said before, with how many rules each holds (``--json``: ``rules``).
10. What the push read (the walk, the site, the hash cache: ``push_site(keep=)``, push
   Rule 12) is kept in ``_KEPT``, so that nothing frees it before the process ends
   with ``os._exit`` (``cli/entry.py`` Rule 3): a one-file push of 100,000 files spent
   about 80 ms freeing the walk's rows, the site and the cache.
11. A ``--comment`` the control plane would refuse (``releases`` Rule 16) is refused
   before the directory is read, rather than after the upload.
12. Ctrl-C (``KeyboardInterrupt``) ends the command with code 130 and one line instead
   of a traceback: before the release was created, that nothing changed for visitors
   and that pushing again sends only what is missing (the blobs stored so far, and the
   kept part of a large one cut off: ``api/blobs.py`` Rule 7); while waiting
   (``--wait``), that the release is current. The process then ends at once
   (``cli/entry.py`` Rule 3), its upload threads with it.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # paths are strings on the lean start: it imports neither typing nor pathlib
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DEFAULT_CONTROL", "DEFAULT_STATE", "PushArgs", "lean_main", "run_push"]

DEFAULT_STATE = ".owncdn"  # as cli/fleet_cmds.py
DEFAULT_CONTROL = "http://127.0.0.1:8400"
MAX_WAIT = 300.0
MAX_COMMENT = 1000  # as control/api/releases.py (not imported: FastAPI)
LEFT_OUT_SHOWN = 5  # Rule 9: paths named in the line that says what was left out
INTERRUPTED = 130  # Rule 12: as a shell reports a command ended by SIGINT
HASH_BAR_BYTES = 64 << 20  # Rule 4: files to read from this size on get a hashing bar
_KEPT: list = []  # Rule 10: what a push read, never freed before the process ends


class PushArgs:
    """The push command's arguments (a plain class: importing ``dataclasses`` would
    cost the lean start about 10 ms)."""

    def __init__(self, directory: str | Path, service: str, env: str = "production", control: str | None = None,
                 token: str | None = None, state_dir: str | Path = DEFAULT_STATE, max_files: int = 100_000,
                 max_file_bytes: int = 2 << 30, max_total_bytes: int = 20 << 30, parallel: int = 8,
                 quiet: bool = False, hash_cache: bool = True, as_json: bool = False, wait: float = 0.0,
                 allow_empty: bool = False, dry_run: bool = False, hidden: bool = False,
                 exclude: tuple[str, ...] = (), comment: str = "") -> None:
        self.directory, self.service, self.env, self.control, self.token = directory, service, env, control, token
        self.state_dir, self.max_files, self.max_file_bytes = state_dir, max_files, max_file_bytes
        self.max_total_bytes, self.parallel, self.quiet, self.hash_cache = max_total_bytes, parallel, quiet, hash_cache
        self.as_json, self.wait, self.allow_empty, self.dry_run = as_json, wait, allow_empty, dry_run
        self.hidden, self.exclude, self.comment = hidden, tuple(exclude), comment

    def limits(self):
        """The ``sitedir.Limits`` of these arguments."""
        from owncdn.client.sitedir import Limits

        return Limits(self.max_files, self.max_file_bytes, self.max_total_bytes, self.allow_empty, self.hidden,
                      self.exclude)

    def __repr__(self) -> str:
        return f"<PushArgs {self.directory} service={self.service} env={self.env} wait={self.wait:g}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PushArgs) and vars(self) == vars(other)


_VALUED = {"--service": "service", "-s": "service", "--env": "env", "-e": "env", "--control": "control",
           "--token": "token", "--state-dir": "state_dir", "--max-files": "max_files", "--parallel": "parallel",
           "--wait": "wait", "--comment": "comment", "-m": "comment"}
_FLAGS = {"--quiet": ("quiet", True), "-q": ("quiet", True), "--json": ("as_json", True),
          "--hash-cache": ("hash_cache", True), "--no-hash-cache": ("hash_cache", False),
          "--allow-empty": ("allow_empty", True), "--dry-run": ("dry_run", True),
          "-n": ("dry_run", True), "--hidden": ("hidden", True)}
_REPEATED = {"--exclude": "exclude"}


def parse_lean(argv: list[str]) -> PushArgs | None:
    """Rule 2: the arguments after `push`, or None for the Typer command to handle."""
    values: dict[str, object] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _FLAGS and not eq:
            key, value = _FLAGS[name]
            values[key] = value
        elif name in _VALUED or name in _REPEATED:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                return None
            if name in _REPEATED:
                values.setdefault(_REPEATED[name], []).append(value)  # type: ignore[union-attr]
            else:
                values[_VALUED[name]] = value
        elif arg.startswith("-") or positional:
            return None
        else:
            positional.append(arg)
        i += 1
    if len(positional) != 1 or not values.get("service"):
        return None
    try:
        args = PushArgs(positional[0], str(values["service"]))
        for key in ("env", "control", "token", "comment"):
            if key in values:
                setattr(args, key, str(values[key]))
        if "state_dir" in values:
            args.state_dir = str(values["state_dir"])
        if "max_files" in values:
            args.max_files = int(str(values["max_files"]))
        if "parallel" in values:
            args.parallel = int(str(values["parallel"]))
        if "wait" in values:
            args.wait = float(str(values["wait"]))
    except ValueError:
        return None
    for key in ("quiet", "as_json", "hash_cache", "allow_empty", "dry_run", "hidden"):
        if key in values:
            setattr(args, key, values[key])
    args.exclude = tuple(values.get("exclude", ()))  # type: ignore[arg-type]
    if args.max_files < 1 or not 1 <= args.parallel <= 64 or not 0 <= args.wait <= MAX_WAIT:
        return None
    return args


def lean_main(argv: list[str]) -> int | None:
    """`owncdn push ...`: the exit code, or None when the Typer command must run (Rule 2)."""
    args = parse_lean(argv)
    if args is None:
        return None
    import gc

    gc.disable()  # Rule 7
    return run_push(args)


def _read(*path: str | Path) -> str | None:
    try:
        with open(os.path.join(*path)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _api(args: PushArgs):
    """Rule 3."""
    from owncdn.client.pushapi import PushApi

    control = args.control or os.environ.get("OWNCDN_CONTROL") or _read(args.state_dir, "control.url") or DEFAULT_CONTROL
    token = (args.token or os.environ.get("OWNCDN_TOKEN") or _read(args.state_dir, "control", "admin.token")
             or _read(args.state_dir, "admin.token"))
    return PushApi(control, token)


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class _Bar:
    """Rule 4: a Rich progress bar, made when the size to hash or to upload is known."""

    def __init__(self, enabled: bool) -> None:
        from _thread import allocate_lock  # not threading: the lean start does without it

        self.enabled = enabled
        self.bar = None
        self.hashing = self.task = None
        self.lock = allocate_lock()  # the upload threads report at once
        self.fresh = False  # no upload reported yet (Rule 4)

    def _start(self) -> bool:
        """The bar, made now unless it is there (False where stderr is no terminal)."""
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            console = Console(stderr=True)
            if not console.is_terminal:
                self.enabled = False
                return False
            self.bar = Progress(TextColumn("{task.description:<9}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), console=console, transient=True)
            self.bar.start()
        return True

    def walked(self, walk) -> None:
        """A hashing bar when there is much to read (push Rule 13)."""
        if self.enabled and walk.todo_bytes >= HASH_BAR_BYTES and self._start():
            self.hashing = self.bar.add_task("hashing", total=walk.todo_bytes)

    def hashed(self, n: int) -> None:
        if self.hashing is not None:
            self.bar.advance(self.hashing, n)

    def plan(self, site, missing: list[str]) -> None:
        if not self.enabled or self.task is not None:  # before the sizes: a dict of every blob
            return
        if self.hashing is not None:  # everything is hashed once the upload is known
            self.bar.remove_task(self.hashing)
            self.hashing = None
        sizes = site.manifest.blobs
        total = sum(sizes[h] for h in missing)
        if total == 0 or not self._start():
            return
        self.task = self.bar.add_task("uploading", total=total)
        self.fresh = True

    def advance(self, n: int) -> None:
        if self.task is None:
            return
        with self.lock:
            if self.fresh:  # Rule 4: what a streamed push sent while it hashed comes first, at once:
                self.fresh = False  # set, not a speed sample (Rich averages its samples over 30 s)
                self.bar.reset(self.task, completed=n)
            else:
                self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def left_out_lines(left_out: list[tuple[str, str]], shown: int = LEFT_OUT_SHOWN) -> str:
    """Rule 9: the lines that say what the push left out of the directory ("" for nothing)."""
    from owncdn.core.content.leftout import HIDDEN, IGNORE_FILE, from_ignore_file

    hidden = [path for path, why in left_out if why == HIDDEN]
    ignored = [path for path, why in left_out if from_ignore_file(why)]  # a file, or a line of one
    matched = [path for path, why in left_out if why != HIDDEN and not from_ignore_file(why)]
    lines = ""
    for paths, before, after, how in ((hidden, "hidden ", "", " (--hidden pushes them)"),
                                      (matched, "", " matching --exclude", ""),
                                      (ignored, "", f" as {IGNORE_FILE} says", "")):
        if paths:
            names = ", ".join(paths[:shown]) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")
            lines += f"left out {len(paths)} {before}path{'' if len(paths) == 1 else 's'}{after}: {names}{how}\n"
    return lines


def comment_problem(comment: str) -> str | None:
    """Rule 11: why the control plane would refuse ``comment`` (``releases`` Rule 16), or None."""
    if len(comment) > MAX_COMMENT:
        return f"at most {MAX_COMMENT} characters, got {len(comment)}"
    if any(ord(c) < 32 or ord(c) == 127 for c in comment):
        return "one line of text, without control characters (a newline, a tab)"
    return None


def _fail(message: str) -> int:
    sys.stderr.write(f"owncdn: {message}\n")
    sys.stderr.flush()
    return 1


def run_push(args: PushArgs) -> int:
    """Rule 1: push, print the result, and with ``wait`` follow the edges (Rule 5)."""
    problem = comment_problem(args.comment)
    if problem is not None:
        return _fail(f"--comment: {problem}")
    if args.dry_run:
        from owncdn.cli.push_dry import run_dry

        return run_dry(args)
    from owncdn.client.errors import ApiError
    from owncdn.client.hashcache import HashCache
    from owncdn.client.push import push_site
    from owncdn.client.sitedir import SiteError

    limits = args.limits()
    bar = _Bar(not args.quiet and sys.stderr.isatty())
    try:
        api = _api(args)
    except ApiError as exc:
        return _fail(str(exc))
    result = saving = None
    cache = HashCache.for_root(args.directory) if args.hash_cache else None
    try:
        try:
            result = push_site(api, args.directory, service=args.service, env=args.env, limits=limits,
                               parallel=args.parallel, progress=bar.advance, on_plan=bar.plan,
                               cache=cache, save_cache=False, keep=_KEPT, on_walk=bar.walked,
                               hashed=bar.hashed if bar.enabled else None,  # no call per file for no bar
                               comment=args.comment)
        except ApiError:  # the directory was read: its hashes are right (push Rule 5)
            saving = cache.save_soon() if cache is not None else None
            raise
        finally:
            bar.stop()
        saving = cache.save_soon() if cache is not None else None  # Rule 6: while the edges switch
        if not args.as_json:  # said before the wait for the edges (Rule 5)
            sys.stdout.write(_made_lines(args, result))
            sys.stdout.flush()
        status = follow(api, args.env, args.service, result.release["number"], args.wait) if args.wait else None
    except SiteError as exc:
        return _fail(str(exc))
    except ApiError as exc:
        lines = [str(exc)] + [f"  {p}" for p in (exc.problems or [])[:10]]
        if result is None:
            lines.append("the previous release is still current")
        return _fail("\n".join(lines))
    except KeyboardInterrupt:  # Rule 12
        _fail(f"stopped; release {result.release['number']} is current, and the edges go on switching to it"
              if result is not None else "stopped before the release was created: the previous release is still "
              "current; what was uploaded is kept, so pushing again sends only the rest")
        return INTERRUPTED
    finally:
        api.close()
        if saving is not None:
            saving.join()
    number = result.release["number"]
    out = {"env": args.env, "service": args.service, "release": number, "files": result.files,
           "bytes": result.bytes_total, "blobs_uploaded": result.blobs_uploaded,
           "bytes_uploaded": result.bytes_uploaded, "manifest_bytes": result.manifest_bytes,
           "seconds": round(result.seconds, 4), "left_out": [path for path, _ in result.left_out],
           "bytes_resumed": result.bytes_resumed, "rules": result.rules}
    if status is not None:
        out |= status_fields(status)
    if args.as_json:
        from owncdn.client.leanjson import dumps  # json.dumps's text without importing json (Rule 8)

        sys.stdout.write(dumps(out) + "\n")
    else:
        if status is not None:
            sys.stdout.write(served_line(status))
        sys.stdout.write(left_out_lines(result.left_out))
    sys.stdout.flush()
    _KEPT.append((result, cache))  # Rule 10
    problem = not_served(number, status, args.wait) if status is not None else None
    return _fail(problem) if problem is not None else 0


def _made_lines(args: PushArgs, result) -> str:
    """What the push made: the release, what was uploaded and resumed, its rules files."""
    text = (f"{args.env}: {args.service} release {result.release['number']} ({result.files} "
            f"file{'' if result.files == 1 else 's'}, {human(result.bytes_total)}); uploaded {result.blobs_uploaded} "
            f"blob(s), {human(result.bytes_uploaded)} + manifest {human(result.manifest_bytes)} "
            f"in {result.seconds:.2f}s\n")
    if result.bytes_resumed:  # push Rule 15
        text += (f"resumed: {human(result.bytes_resumed)} the control plane kept from an upload that broke were "
                 "not sent again\n")
    if result.rules:  # sitedir Rule 12
        text += "rules that go with this release: " + ", ".join(
            f"{name} ({count} rule{'' if count == 1 else 's'})" for name, count in result.rules.items()) + "\n"
    return text


FOLLOW_STEP = 5.0  # Rule 5: seconds between the news of edges that are retrying


def follow(api, env: str, service: str, number: int, wait: float, tell=None) -> dict:
    """Rule 5: the release's status once every edge in contact serves it (or failed),
    or after ``wait`` seconds; asked in steps of ``FOLLOW_STEP`` so that what an edge
    says it is retrying after (a full disk) is told (to stderr) as it comes, not only
    at the end. A push every edge serves within the first step asks once, as before."""
    tell = tell or (lambda line: sys.stderr.write(line + "\n"))
    deadline = time.monotonic() + wait
    told: dict[str, str] = {}
    while True:
        remaining = deadline - time.monotonic()
        status = api.release_status(env, service, number, max(0.0, min(remaining, FOLLOW_STEP)))
        if status["complete"] or remaining <= FOLLOW_STEP:
            return status
        for node in status["pending"]:
            reason = node.get("reason")
            if reason and told.get(node["name"]) != reason:
                told[node["name"]] = reason
                tell(f"{node['name']} does not serve release {number} yet: {reason}; waiting on")


def status_fields(status: dict) -> dict:
    """Rule 5, for ``--json``: the names of the edges serving the release, failing it,
    not answering, and whose event stream ended."""
    return {"serving": [n["name"] for n in status["serving"]], "failed": [n["name"] for n in status["failed"]],
            "pending": [n["name"] for n in status["pending"]],
            "retrying": {n["name"]: n["reason"] for n in status["pending"] if n.get("reason")},
            "disconnected": [n["name"] for n in status.get("disconnected") or ()]}


def served_line(status: dict) -> str:
    """Rule 5: how many edges serve the release; those whose event stream ended are
    named, not waited for."""
    gone = ", ".join(n["name"] for n in status.get("disconnected") or ())
    return (f"served by {len(status['serving'])} edge(s)"
            + (f"; not serving: {gone} (event stream ended; not waited for)" if gone else "") + "\n")


def not_served(number: int, status: dict, wait: float) -> str | None:
    """Rule 5: what to say (and exit 1 for) when an edge failed release ``number`` or did
    not serve it within ``wait`` seconds; None when every edge in contact serves it."""
    if not (status["failed"] or status["pending"]):
        return None
    failed = "; ".join(f"{n['name']}: {n['reason']}" for n in status["failed"])
    pending = ", ".join(n["name"] + (f" (retrying: {n['reason']})" if n.get("reason") else "")
                        for n in status["pending"])
    return (f"release {number} is current, but "
            + "; ".join(x for x in (f"failed on {failed}" if failed else "",
                                    f"not served after {wait:g}s by {pending}" if pending else "") if x))
