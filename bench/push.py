"""Pushing a real site to 3 edges on loopback: `owncdn push` vs `rsync -a` to 3 directories.

The site is the HTML documentation of Debian's `python3-doc` (about 1,000 files and
67 MB, at /usr/share/doc/python3/html); as root the script installs `python3-doc` and
`rsync` with apt. The site is copied once into a work directory with its symlinks
resolved (Debian links `_static/jquery.js` to /usr/share/javascript, outside the
site, which `owncdn push` refuses), and both tools push that copy.

What is measured (the same end state for both tools: the site on 3 targets):
- owncdn: the control plane (`owncdn control`) and 3 edges (`owncdn edge --control`,
  each on its own 127.0.1.N) run as processes. Time runs from starting the `owncdn
  push --wait` command (a new process, as a user runs it: start-up, hashing, upload,
  release, then waiting on the control plane until every edge in contact serves it)
  until all 3 edges acknowledged serving the release to the control plane (the
  command's end, once the script checked that the 3 acknowledgements are stored;
  else the script polls until they are; the check itself is not timed). With `--in-process` the push and the wait
  run in this process instead (no interpreter start-up). An edge acknowledges once its
  blobs are written (page cache) and its release file is durable; it writes the blobs
  back in the background (`edge/releases.py` rule 6: after a crash of the OS, blobs not
  known to be flushed are hashed again). The script then waits, untimed, until the
  edges report that done (`owncdn_edge_releases_unflushed` 0) and have made the
  compressed forms a release's warm-up makes in the background (those of its 3 text
  files over 1 MiB, 7.9 MB: `owncdn_edge_push_compressed_forms_making` 0), so the next
  tool does not run during it, and prints when it was.
  Each run starts a new control plane, new edges and an empty hash cache, so every
  first push hashes and moves everything.
- rsync: `rsync -a --stats` from the copy to 3 directories, the 3 at once. rsync
  leaves what it wrote in the page cache (as owncdn's edges do; its control plane
  makes the blobs durable before it stores the release); the time rsync's copies then
  take to be durable too (`sync -f` on the 3 targets, i.e. syncfs of their file
  system, right after rsync ended) is printed as well, as "rsync + sync". The target
  compares with plain rsync. The sync also keeps rsync's dirty pages from being
  written back by owncdn's own syncfs when owncdn runs right after it.

Both: the first push to empty targets, then a push after one file changed; `--runs`
times (a fresh fleet and fresh rsync targets each run, the tools' order alternating).
Printed per run and as min / median: seconds, bytes moved, and owncdn / rsync; per run
also the CPU seconds (user + system) of each owncdn part until the acknowledgements
(the client: the command, or this script with `--in-process`; the edges' background flush
after them is not counted, a few ms) and of the 3 rsyncs. Bytes:
for rsync the "Total bytes sent" of its 3 runs; for owncdn the upload (blobs +
manifest) and what the 3 edges fetched (from their /metrics: blob bytes, and the
manifest, or its changes from the release before, each gets on its event stream).

    .venv/bin/python bench/push.py [--runs 3] [--in-process] [--profile DIR] [--ack-timeout 120] [--keep] [--dir DIR]
                                   [--release-file MB | --files N]

`--release-file MB` pushes a download directory instead of the docs: one file of MB MiB
of random bytes (a release's image or archive: one blob, larger than a bundle takes,
so it goes up with one `PUT` and down to each edge with one `GET`) and a small
`index.html`, the file changed for the second push.

`--files N` pushes a generated site of N small pages (0.5-2 KB, 500 a directory)
instead: with 100000, how a push scales with the number of files.

`--dir DIR` puts the work directory (the site's copy, the fleet's state, the rsync
targets) under DIR instead of the system's temporary directory. Where it is matters
on a file system without a journal (this machine's ext4): creating a file there scans
past every inode of its block group freed within the last minutes (ext4
`recently_deleted`), and /tmp, where test suites create and delete many files, made
each creation cost about 100-150 us instead of about 7 us (in /var/tmp). Both tools
pay it per file (rsync about 3 per site file, owncdn about 4: control plane and 3 edges).
So the runs' work directories are all deleted at the end, not one after each run: a
run would otherwise create its files among the inodes the run before freed.

Before the runs the script compiles owncdn's modules to bytecode (``compileall``, as
`pip install` does), so `owncdn push` starts as an installed command does, also where
``PYTHONDONTWRITEBYTECODE`` is set (without it, each start compiled the modules it
imports again: about 11 ms).

`--profile DIR` runs the control plane and the first edge under `py-spy record`
(collapsed stacks in DIR, for flamegraph tools or sorting; py-spy from PyPI, run as root).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import Procs, cpu_seconds, free_port  # noqa: E402

from owncdn.client import Client  # noqa: E402
from owncdn.client.hashcache import HashCache  # noqa: E402
from owncdn.client.push import push_site  # noqa: E402
from owncdn.client.pushapi import PushApi  # noqa: E402
from owncdn.client.sitedir import Limits  # noqa: E402

DOC_CANDIDATES = ["/usr/share/doc/python3/html", "/usr/share/doc/python3-doc/html"]
EDGES = 3
SERVICE = "docs"
CDN = f"""version: 1
services:
  - name: {SERVICE}
    hostnames: [docs.example.test]
    mode: push
"""


def ensure_packages() -> Path:
    """The docs directory, installing python3-doc and rsync first when root and missing."""
    if (shutil.which("rsync") is None or _docs() is None) and os.geteuid() == 0:
        print("installing python3-doc and rsync (apt) ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "python3-doc", "rsync"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
    docs = _docs()
    if docs is None or shutil.which("rsync") is None:
        sys.exit("bench/push.py needs Debian's python3-doc and rsync: run it as root, or apt-get install them")
    return docs


def _docs() -> Path | None:
    for candidate in DOC_CANDIDATES:
        path = Path(candidate)
        if (path / "index.html").exists():
            return Path(os.path.realpath(path))
    return None


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)


class Cdn:
    """The control plane and the edges as processes."""

    def __init__(self, work: Path, profile: Path | None = None) -> None:
        self.work, self.procs = work, Procs()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = work / "control"
        self.profile = profile
        self.admins: list[str] = []

    def _argv(self, name: str, args: list[str]) -> list[str]:
        py = [sys.executable, "-m", "owncdn.cli", *args]
        if self.profile is None or name not in ("control", "edge-0"):
            return py
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = self.profile / f"{name}-{self.work.name}.txt"
        return [spy, "record", "--rate", "250", "--threads", "--idle", "--format", "raw", "--output", str(out), "--", *py]

    def start(self) -> Client:
        self.procs.start(self._argv("control", ["control", "--listen", f"127.0.0.1:{self.port}", "--state-dir",
                                                str(self.state), "--no-health"]), self.work / "control.log")
        wait_until(lambda: (self.state / "bootstrap.token").exists() and self._healthy(), 30, "the control plane starting")
        admin = self.token = (self.state / "admin.token").read_text().strip()
        bootstrap = (self.state / "bootstrap.token").read_text().strip()
        self.api = Client(self.url, admin, timeout=60)
        self.api.add_version("production", CDN)
        for i in range(EDGES):
            host = f"127.0.1.{i + 1}"
            admin_addr = f"{host}:{free_port()}"
            self.admins.append(admin_addr)
            self.procs.start(self._argv(f"edge-{i}", [
                "edge", "--control", self.url, "--token", bootstrap, "--listen", f"{host}:{free_port()}",
                "--admin", admin_addr, "--id", f"edge-{i}", "--location", f"loc{i}",
                "--access-log", "off", "--state-dir", str(self.work / f"edge-{i}")]), self.work / f"edge-{i}.log")
        wait_until(lambda: len([n for n in self.api.nodes("production") if n["kind"] == "edge"]) == EDGES, 30,
                   "the edges registering")
        return self.api

    def _healthy(self) -> bool:
        try:
            return Client(self.url, timeout=1).health()["ok"]
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def acked(self, number: int) -> int:
        releases = self.api.releases("production", SERVICE)
        return next((len(r["nodes"]) for r in releases if r["number"] == number), 0)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far by the control plane and by the edges."""
        control, *edges = self.procs.procs
        return cpu_seconds([control.pid]), cpu_seconds([edge.pid for edge in edges])

    def fetched_bytes(self) -> int:
        """Blob and manifest bytes the edges got since they started (their /metrics)."""
        return self._metric_sum("owncdn_edge_release_fetched_bytes") + self._metric_sum("owncdn_edge_release_manifest_bytes")

    def unflushed(self) -> int:
        """Live releases whose blobs the edges have not written back yet (their /metrics)."""
        return self._metric_sum("owncdn_edge_releases_unflushed")

    def compressing(self) -> int:
        """Compressed forms the edges are making (a warm-up makes those of large text
        files in the background: edge/static.py rule 7), from their /metrics."""
        return self._metric_sum("owncdn_edge_push_compressed_forms_making")

    def _metric_sum(self, name: str) -> int:
        total = 0
        for addr in self.admins:
            text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
            match = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", text, re.M)
            total += int(float(match.group(1))) if match else 0
        return total

    def stop(self) -> None:
        for proc in self.procs.procs:  # py-spy writes its profile when its child ends on SIGINT
            if self.profile is not None:
                try:
                    os.killpg(proc.pid, 2)
                except ProcessLookupError:
                    pass
        if self.profile is not None:
            time.sleep(3)
        self.procs.close()


def push_owncdn(cdn: Cdn, site: Path, ack_timeout: float, in_process: bool, cache_home: Path) -> dict:
    """Push ``site`` and wait until every edge acknowledged serving it."""
    fetched_before = cdn.fetched_bytes()
    cpu_before, own_before = cdn.cpu(), _own_cpu(in_process)
    t0 = time.perf_counter()
    if in_process:
        api = PushApi(cdn.url, cdn.token)
        result = push_site(api, site, service=SERVICE, limits=Limits(hidden=True),
                           cache=HashCache.for_root(site, cache_home / "owncdn" / "hashes"))
        out = {"release": result.release["number"], "files": result.files, "bytes": result.bytes_total,
               "blobs_uploaded": result.blobs_uploaded, "bytes_uploaded": result.bytes_uploaded,
               "manifest_bytes": result.manifest_bytes}
        uploaded = time.perf_counter() - t0
        api.release_status("production", SERVICE, out["release"], wait=ack_timeout)
        ended = time.perf_counter()
        api.close()
    else:
        owncdn = str(Path(sys.executable).parent / "owncdn")
        done = subprocess.run([owncdn, "push", str(site), "--service", SERVICE, "--control", cdn.url,
                               "--token", cdn.token, "--quiet", "--json", "--wait", f"{ack_timeout:g}",
                               "--hidden"],  # the same files as rsync -a (the docs hold a .buildinfo)
                              capture_output=True, text=True, env=dict(os.environ, XDG_CACHE_HOME=str(cache_home)))
        ended = time.perf_counter()
        if done.returncode:
            raise RuntimeError(f"owncdn push failed: {done.stderr.strip()}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        uploaded = out["seconds"]
    number = out["release"]
    cpu_after, own_after = cdn.cpu(), _own_cpu(in_process)  # until the acknowledgements, as the time
    note = ""
    if cdn.acked(number) == EDGES:  # the command returned once the control plane saw every edge in contact
        total = ended - t0          # serve it: the 3 did, so the time is the command's
    else:
        try:
            wait_until(lambda: cdn.acked(number) == EDGES, ack_timeout, f"all {EDGES} edges acknowledging release {number}")
            total = time.perf_counter() - t0
        except TimeoutError as exc:
            total = uploaded
            note = f"NOTE: {exc} ({cdn.acked(number)} did); the time is the upload alone"
    try:  # not timed: the edges write their blobs back in the background (edge/releases.py rule 6)
        wait_until(lambda: cdn.unflushed() == 0 and cdn.compressing() == 0, 30, "the edges flushing")
        flushed = time.perf_counter() - t0
    except TimeoutError:
        flushed = float("nan")
    fetched = cdn.fetched_bytes() - fetched_before
    cpu = {"client": own_after - own_before, "control": cpu_after[0] - cpu_before[0], "edges": cpu_after[1] - cpu_before[1]}
    return {"cpu": cpu, "flushed_seconds": flushed, "seconds": total, "upload_seconds": uploaded, "uploaded": out["bytes_uploaded"] + out["manifest_bytes"],
            "edges_fetch": fetched, "blobs": out["blobs_uploaded"], "files": out["files"], "bytes_total": out["bytes"],
            "manifest": out["manifest_bytes"], "note": note}


def _own_cpu(in_process: bool = False) -> float:
    """CPU seconds of this process (``in_process``) or of its waited-for children (the
    `owncdn push` command, the rsyncs)."""
    usage = resource.getrusage(resource.RUSAGE_SELF if in_process else resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def push_rsync(site: Path, targets: list[Path]) -> dict:
    cpu_before = _own_cpu()
    t0 = time.perf_counter()
    runs = [subprocess.Popen(["rsync", "-a", "--stats", f"{site}/", f"{t}/"], stdout=subprocess.PIPE, text=True)
            for t in targets]
    outs = [r.communicate()[0] for r in runs]
    seconds = time.perf_counter() - t0
    cpu = _own_cpu() - cpu_before
    if any(r.returncode for r in runs):
        raise RuntimeError("rsync failed")
    subprocess.run(["sync", "-f", *map(str, targets)], check=True)  # what owncdn does before it acknowledges
    durable = time.perf_counter() - t0
    sent = sum(int(re.search(r"Total bytes sent: ([\d,]+)", out).group(1).replace(",", "")) for out in outs)
    return {"seconds": seconds, "durable_seconds": durable, "sent": sent, "cpu": cpu}


def change_one_file(site: Path) -> tuple[Path, int]:
    candidates = [site / "library" / "functions.html", *sorted(site.rglob("*.html"))]
    target = next(p for p in candidates if p.exists())
    with open(target, "a") as f:
        f.write(f"\n<!-- changed {time.time()} -->\n")
    return target, target.stat().st_size


def release_site(where: Path, mib: int) -> Path:
    """``--release-file``: a download directory, one large file (random bytes: nothing to
    compress or deduplicate) and a page naming it."""
    where.mkdir()
    with open(where / "release.bin", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    (where / "index.html").write_text(f"<h1>Downloads</h1><a href=release.bin>release.bin</a> ({mib} MiB)\n")
    return where


def many_files_site(where: Path, count: int) -> Path:
    """``--files``: a site of ``count`` small pages (0.5-2 KB each, 500 a directory), as
    a large documentation site or a blog with many posts has."""
    for i in range(count):
        directory = where / f"d{i // 500:03d}"
        if i % 500 == 0:
            directory.mkdir(parents=True)
        body = "x" * (500 + (i * 37) % 1500)
        (directory / f"page{i % 500:03d}.html").write_text(f"<html><body><h1>Page {i}</h1><p>{body}</p></body></html>\n")
    return where


def forget_pages(where: Path) -> None:
    """Write a finished run's files out and drop them from the page cache, keeping the files.

    On a VM that reports free memory to its hypervisor, the 0.5 GB a run leaves in the page cache
    would make the later runs write into memory the host has to fault in again (about 10 us a page,
    for both tools); deleting the files instead would make rsync's file creations scan the recently
    deleted inodes of an ext4 without a journal. See the README, "Two traps of this machine".
    """
    os.sync()
    for path in where.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        except OSError:
            pass


def mb(n: int) -> str:
    return f"{n / 1e6:9.3f} MB"


def one_run(docs_site: Path, work: Path, args, run: int) -> dict:
    """A fresh fleet, fresh rsync targets and a fresh copy of the site: both cases, both tools."""
    site = work / "site"
    shutil.copytree(docs_site, site, symlinks=False)
    targets = [work / f"rsync-{i}" for i in range(EDGES)]
    for t in targets:
        t.mkdir()
    cdn = Cdn(work, args.profile)
    cache_home = work / "cache"
    try:
        cdn.start()
        rsync_first = run % 2 == 1  # alternate which tool goes first

        def both():
            if rsync_first:
                rs = push_rsync(site, targets)
                return push_owncdn(cdn, site, args.ack_timeout, args.in_process, cache_home), rs
            own = push_owncdn(cdn, site, args.ack_timeout, args.in_process, cache_home)
            return own, push_rsync(site, targets)

        first = both()
        time.sleep(2.1)  # so the hash cache trusts the entries of the first push (hashcache rule 2)
        changed, size = change_one_file(site)
        second = both()
    finally:
        cdn.stop()
    return {"first push": first, "one file changed": second, "changed": (str(changed.relative_to(site)), size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Runs, each with a fresh fleet and fresh targets.")
    parser.add_argument("--in-process", action="store_true", help="Push from this process, not the owncdn command.")
    parser.add_argument("--profile", type=Path, help="Record the control plane and edge-0 with py-spy into this directory.")
    parser.add_argument("--ack-timeout", type=float, default=120.0, help="Seconds to wait for the edges' acks.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    parser.add_argument("--dir", type=Path, help="Make the work directory under this one (default: the system's).")
    parser.add_argument("--release-file", type=int, default=0, metavar="MB",
                        help="Push a release directory instead: one file of MB MiB of random bytes and a small "
                             "index.html (the one changed for the second push).")
    parser.add_argument("--files", type=int, default=0, metavar="N",
                        help="Push a site of N small generated pages instead (a large site: 100000 to see how "
                             "a push scales with the number of files).")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    docs = ensure_packages()
    import owncdn

    compileall.compile_dir(list(owncdn.__path__)[0], quiet=1)  # as an install does (see the docstring)
    base = Path(tempfile.mkdtemp(prefix="owncdn-push-bench-", dir=args.dir))
    runs = []
    try:
        if args.release_file:
            docs = release_site(base / "release-site", args.release_file)
        elif args.files:
            docs = many_files_site(base / "many-files", args.files)
        for run in range(args.runs):
            work = base / f"run{run}"
            work.mkdir()
            r = one_run(docs, work, args, run)
            runs.append(r)
            forget_pages(work)
            for case in ("first push", "one file changed"):
                own, rs = r[case]
                print(f"run {run + 1} {case:16}: owncdn {own['seconds']:6.3f} s (hash+upload+release {own['upload_seconds']:.2f} s)"
                      f"  rsync {rs['seconds']:6.3f} s (with sync {rs['durable_seconds']:.2f} s)"
                      f"  ratio {own['seconds'] / rs['seconds']:5.2f}x"
                      + (f"  {own['note']}" if own["note"] else ""), flush=True)
                cpu = own["cpu"]
                print(f"      CPU s: owncdn client {cpu['client']:.2f} + control {cpu['control']:.2f} + 3 edges "
                      f"{cpu['edges']:.2f} = {sum(cpu.values()):.2f}; rsync {rs['cpu']:.2f}; "
                      f"edges' blobs on disk and forms made after {own['flushed_seconds']:.2f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    own0 = runs[0]["first push"][0]
    how = "push_site() in this process" if args.in_process else "the `owncdn push` command"
    print(f"\n{own0['files']} files, {own0['bytes_total'] / 1e6:.1f} MB; {EDGES} edges / rsync targets on loopback; "
          f"owncdn: {how}, from its start until all {EDGES} edges acknowledged; {len(runs)} runs\n")
    summary = {}
    for case in ("first push", "one file changed"):
        owns = [r[case][0] for r in runs]
        rss = [r[case][1] for r in runs]
        o_s = [o["seconds"] for o in owns]
        r_s = [x["seconds"] for x in rss]
        label = case if case == "first push" else f"{case} ({runs[-1]['changed'][0]}, {runs[-1]['changed'][1]} B)"
        print(label)
        print(f"  owncdn push : min {min(o_s):6.3f} s  median {statistics.median(o_s):6.3f} s; "
              f"uploaded {mb(owns[-1]['uploaded'])} ({owns[-1]['blobs']} blobs + manifest {owns[-1]['manifest']} B); "
              f"edges fetched {mb(owns[-1]['edges_fetch'])}")
        d_s = [x["durable_seconds"] for x in rss]
        print(f"  rsync -a x3 : min {min(r_s):6.3f} s  median {statistics.median(r_s):6.3f} s; sent {mb(rss[-1]['sent'])}")
        print(f"  rsync + sync: min {min(d_s):6.3f} s  median {statistics.median(d_s):6.3f} s (until its copies are on disk)")
        print(f"  owncdn / rsync: min {min(o_s) / min(r_s):5.2f}x  median {statistics.median(o_s) / statistics.median(r_s):5.2f}x"
              f"  (/ rsync + sync: min {min(o_s) / min(d_s):5.2f}x  median {statistics.median(o_s) / statistics.median(d_s):5.2f}x)")
        ratios = [o / r for o, r in zip(o_s, r_s)]  # each run's pair ran minutes apart at most: the fairest match
        o_cpu, r_cpu = [sum(o["cpu"].values()) for o in owns], [x["cpu"] for x in rss]
        print(f"  run by run  : ratio median {statistics.median(ratios):5.2f}x, owncdn faster in "
              f"{sum(x < 1 for x in ratios)} of {len(ratios)}; CPU s median owncdn {statistics.median(o_cpu):.2f}, "
              f"rsync {statistics.median(r_cpu):.2f}")
        summary[case] = {"owncdn_seconds": o_s, "rsync_seconds": r_s, "rsync_sync_seconds": d_s, "owncdn_uploaded": owns[-1]["uploaded"],
                         "owncdn_cpu": o_cpu, "rsync_cpu": r_cpu,
                         "owncdn_edges_fetched": owns[-1]["edges_fetch"], "rsync_sent": rss[-1]["sent"]}
    second = runs[-1]["one file changed"][0]
    size = runs[-1]["changed"][1]
    limit = 1.1 * (size + second["manifest"])
    verdict = "met" if second["uploaded"] <= limit else "NOT met"
    print(f"\nsecond push uploaded {second['uploaded']} B; target <= 1.1 x (changed file {size} B + manifest "
          f"{second['manifest']} B) = {limit:.0f} B: {verdict}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
