"""What `owncdn push --wait` says of the edges (cli/push_run.py Rule 5)."""

from __future__ import annotations

from owncdn.cli.push_run import not_served, status_fields


def node(name: str, reason: str | None = None) -> dict:
    out = {"node_id": name, "name": name, "location": "fra"}
    return out if reason is None else {**out, "reason": reason}


def test_every_edge_serving_is_no_problem():
    status = {"serving": [node("a")], "failed": [], "pending": [], "disconnected": []}
    assert not_served(3, status, 30) is None
    assert status_fields(status) == {"serving": ["a"], "failed": [], "pending": [], "retrying": {}, "disconnected": []}


def test_failed_and_pending_edges_are_named_with_what_they_retry_after():
    status = {"serving": [node("a")], "failed": [node("b", "blob 1f2e did not match its name after 3 fetches")],
              "pending": [node("c", ""), node("d", "no space left on this edge's disk (/var/lib/owncdn/push: "
                                                    "No space left on device); 5 blobs not fetched")]}
    assert not_served(3, status, 30) == (
        "release 3 is current, but failed on b: blob 1f2e did not match its name after 3 fetches; "
        "not served after 30s by c, d (retrying: no space left on this edge's disk (/var/lib/owncdn/push: "
        "No space left on device); 5 blobs not fetched)")
    assert status_fields(status)["retrying"] == {"d": status["pending"][1]["reason"]}


def test_an_older_control_plane_s_pending_edges_have_no_reason():
    status = {"serving": [], "failed": [], "pending": [node("c")]}
    assert not_served(1, status, 5) == "release 1 is current, but not served after 5s by c"
