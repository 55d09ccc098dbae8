"""What `owncdn push --wait` says of the edges (cli/push_run.py Rule 5)."""

from __future__ import annotations

from owncdn.cli.push_run import FOLLOW_STEP, follow, not_served, status_fields


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


class Statuses:
    """A control plane whose status answers are scripted, one per question."""

    def __init__(self, *answers: dict) -> None:
        self.answers, self.asked = list(answers), []

    def release_status(self, env, service, number, wait):
        self.asked.append(wait)
        return self.answers.pop(0)


def waiting(*reasons: str) -> dict:
    return {"number": 4, "complete": False, "serving": [], "failed": [],
            "pending": [node(f"edge-{i}", r) for i, r in enumerate(reasons)]}


def test_follow_asks_once_when_every_edge_serves_within_the_first_step():
    api = Statuses({"number": 4, "complete": True, "serving": [node("a")], "failed": [], "pending": []})
    told = []
    assert follow(api, "production", "blog", 4, 60, told.append)["complete"]
    assert api.asked == [FOLLOW_STEP] and told == []


def test_follow_tells_what_an_edge_retries_after_as_it_comes_and_once(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("owncdn.cli.push_run.time.monotonic", lambda: clock[0])

    class Ticking(Statuses):
        def release_status(self, env, service, number, wait):
            clock[0] += wait   # each answer comes when its wait is over
            return super().release_status(env, service, number, wait)

    full = "no space left on this edge's disk (/srv/push: No space left on device); 2 blobs not fetched"
    api = Ticking(waiting("", full), waiting("", full), waiting(full, full))
    told = []
    status = follow(api, "production", "blog", 4, 12, told.append)
    assert api.asked == [5.0, 5.0, 2.0] and not status["complete"]   # 12 s in all
    assert told == [f"edge-1 does not serve release 4 yet: {full}; waiting on"]   # the last answer is the result
