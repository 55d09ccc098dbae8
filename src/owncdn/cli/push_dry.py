"""`owncdn push DIR --service S --dry-run`: what a push would change and upload, with
nothing uploaded, announced or created.

Rules:
1. The directory is walked and hashed as a push does (its limits and refusals, the hash
   cache, which is saved: the push that follows reads no file again).
2. The service must be a push service of the environment's latest version (``GET
   /v1/envs/{env}/services``), as a push checks, else exit 1 saying which services
   there are or what its mode is. The paths are compared with the current release's
   manifest (``GET .../releases?current=true`` for which one is current, however old;
   then ``GET .../releases/{n}/manifest``; ``core/content/changes.py`` Rule 7); with no
   current release every path is added.
3. The control plane is asked which blobs it lacks, as a push asks first (``POST
   /v1/blobs/missing``; asking keeps the present ones from blob GC a while): those,
   and their bytes, are what the push would upload.
4. Text: a line saying nothing was changed, the counts, the first ``SHOWN`` paths
   (``~`` changed, ``+`` added, ``-`` removed, as ``rsync -n`` lists them) and what
   would be uploaded, then what the walk left out (``push_run`` Rule 9: up to ``SHOWN``
   paths); ``--json``: one object with every path. Exit 0; a refused
   directory, an unknown service or an unreachable control plane exit 1 as a push does.
"""

from __future__ import annotations

import sys

from owncdn.cli.push_run import PushArgs, _api, _fail, human, left_out_lines

__all__ = ["marked_lines", "run_dry"]

SHOWN = 50
LISTED = 1000  # releases listed to find the current one, from a control plane that lists no current one alone


def run_dry(args: PushArgs) -> int:
    """Rules 1-4."""
    from owncdn.client.errors import ApiError
    from owncdn.client.hashcache import HashCache
    from owncdn.client.sitedir import SiteError, walk_site
    from owncdn.core.content.changes import path_changes
    from owncdn.core.content.manifest import parse_manifest
    from owncdn.core.content.pushable import refusal

    limits = args.limits()
    try:
        api = _api(args)
    except ApiError as exc:
        return _fail(str(exc))
    try:
        listed = api.services(args.env)
        modes = {s["name"]: s.get("mode", "pull") for s in listed["services"]}
        envs = None if listed.get("version") else []  # the environment has no config version (pushable Rule 2)
        refused = refusal(args.env, args.service, modes, envs)  # the control plane's own words
        if refused is not None:
            return _fail(refused[2])
        listed = api.releases(args.env, args.service, 1, current=True)
        if listed and not listed[0]["current"]:  # a control plane that lists the newest instead
            listed = api.releases(args.env, args.service, LISTED)
        current = next((r for r in listed if r["current"]), None)
        old = (parse_manifest(api.release_manifest(args.env, args.service, current["number"]))
               if current is not None else None)
        cache = HashCache.for_root(args.directory) if args.hash_cache else None
        site = walk_site(args.directory, limits, cache).hash()  # Rule 1: the cache saved
        blobs = site.manifest.blobs
        missing = api.missing_blobs(list(blobs))
    except SiteError as exc:
        return _fail(str(exc))
    except ApiError as exc:
        return _fail("\n".join([str(exc)] + [f"  {p}" for p in (exc.problems or [])[:10]]))
    finally:
        api.close()
    changed, added, removed = path_changes(old, site.manifest)
    upload = sum(blobs[sha] for sha in missing)
    files, total = len(site.manifest.files), site.manifest.total_bytes
    if args.as_json:
        import json

        sys.stdout.write(json.dumps({
            "env": args.env, "service": args.service, "dry_run": True,
            "current": current["number"] if current is not None else None, "files": files, "bytes": total,
            "changed": changed, "added": added, "removed": removed,
            "unchanged": files - len(changed) - len(added), "blobs_to_upload": len(missing),
            "bytes_to_upload": upload, "left_out": [path for path, _ in site.left_out]}) + "\n")
        return 0
    since = f"release {current['number']} (current)" if current is not None else "no release yet"
    lines = [f"{args.env}: {args.service}: dry run, nothing was uploaded or changed",
             f"  against {since}: {len(changed)} changed, {len(added)} added, {len(removed)} removed, "
             f"{files - len(changed) - len(added)} unchanged"]
    lines += marked_lines(changed, added, removed)
    lines.append(f"  a push would upload {len(missing)} blob(s), {human(upload)} "
                 f"(of {files} file{'' if files == 1 else 's'}, {human(total)})")
    sys.stdout.write("\n".join(lines) + "\n" + left_out_lines(site.left_out, SHOWN))
    return 0


def marked_lines(changed: list[str], added: list[str], removed: list[str], shown: int = SHOWN) -> list[str]:
    """Rule 4's path lines: ``~`` changed, ``+`` added, ``-`` removed, in path order, the
    first ``shown`` of them (`owncdn releases --changes` lists a release's so)."""
    marked = sorted([(p, "~") for p in changed] + [(p, "+") for p in added] + [(p, "-") for p in removed])
    lines = [f"  {mark} {path}" for path, mark in marked[:shown]]
    if len(marked) > shown:
        lines.append(f"  ... and {len(marked) - shown} more (--json lists every path)")
    return lines
