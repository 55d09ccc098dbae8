"""State channels on the event stream: changed keys sent once, deleted keys announced."""

import json
from types import SimpleNamespace

from owncdn.control.api.channels import ChannelCursor


class DictChannel:
    name = "thing"

    def __init__(self):
        self.state = {}

    def read(self, ctx, node):
        return dict(self.state)


def test_cursor_sends_changes_once_and_deletions():
    channel = DictChannel()
    ctx = SimpleNamespace(channels=[channel])
    cursor = ChannelCursor()
    assert cursor.changes(ctx, None) == [("channel_keys", {"channel": "thing", "keys": []})]
    channel.state["a"] = (1, {"value": "x"})
    channel.state["b"] = (1, {"value": "y"})
    assert cursor.changes(ctx, None) == [("thing", {"key": "a", "value": "x"}), ("thing", {"key": "b", "value": "y"})]
    assert cursor.changes(ctx, None) == []
    channel.state["a"] = (2, {"value": "z"})
    del channel.state["b"]
    assert cursor.changes(ctx, None) == [("thing", {"key": "a", "value": "z"}), ("thing", {"key": "b", "deleted": True})]
    assert cursor.changes(ctx, None) == []
    # a new stream (a reconnect) starts from nothing and gets the whole state again
    # then lists every key, so the node can drop what was deleted meanwhile
    assert ChannelCursor().changes(ctx, None) == [("thing", {"key": "a", "value": "z"}),
                                                  ("channel_keys", {"channel": "thing", "keys": ["a"]})]


def test_event_texts_are_made_once_per_data_and_match_the_changes():
    from owncdn.control.api.events import format_event

    big = {"service": "blog", "number": 7, "manifest": {"files": {f"p{i}": {"size": i} for i in range(100)}}}
    channel = DictChannel()
    channel.state["blog"] = (7, big)
    ctx = SimpleNamespace(channels=[channel])
    first, second = ChannelCursor().texts(ctx, None), ChannelCursor().texts(ctx, None)
    assert first == [format_event(n, d) for n, d in ChannelCursor().changes(ctx, None)]
    assert first[0] is second[0]  # encoded once for both streams (Rule 4)
    assert json.loads(first[0].split("data: ", 1)[1]) == {"key": "blog", **big}
    # the same revision with other data (another environment's release 7): encoded anew
    channel.state["blog"] = (7, {**big, "number": 8})
    assert json.loads(ChannelCursor().texts(ctx, None)[0].split("data: ", 1)[1])["number"] == 8
    # an unhashable revision is encoded each time, and deletions still go out
    channel.state = {"x": ([1, 2], {"v": 1})}
    cursor = ChannelCursor()
    assert cursor.texts(ctx, None)[0] == format_event("thing", {"key": "x", "v": 1})
    channel.state = {}
    assert cursor.texts(ctx, None) == [format_event("thing", {"key": "x", "deleted": True})]


def test_a_wake_of_the_environment_alone_reads_only_the_channels_that_follow_it():
    releases, certs = DictChannel(), DictChannel()
    releases.name, releases.follows_env, certs.name = "release", True, "cert"
    reads = []
    for channel in (releases, certs):
        plain = channel.read
        channel.read = lambda ctx, node, plain=plain, name=channel.name: reads.append(name) or plain(ctx, node)
    ctx = SimpleNamespace(channels=[releases, certs])
    cursor = ChannelCursor()
    releases.state["blog"], certs.state["a.test"] = (1, {"n": 1}), (1, {"pem": "x"})
    first = cursor.texts(ctx, None, env_only=True)  # the first read of a stream is always whole (Rule 1b)
    assert reads == ["release", "cert"] and len(first) == 4
    reads.clear()
    releases.state["blog"], certs.state["a.test"] = (2, {"n": 2}), (2, {"pem": "y"})
    assert [t.split("\n")[0] for t in cursor.texts(ctx, None, env_only=True)] == ["event: release"]
    assert reads == ["release"]  # channels Rule 5
    assert [t.split("\n")[0] for t in cursor.texts(ctx, None)] == ["event: cert"]  # the next whole read


class FakeCerts:
    def __init__(self, ids):
        self._ids = dict(ids)

    def ids(self):
        return dict(self._ids)

    def remove(self, cert_id):
        self._ids.pop(cert_id, None)


# rows: (certificates on the edge, keys the control plane lists, what stays)
PRUNES = [
    ({"a": "f1", "b": "f2"}, {"a", "b"}, {"a", "b"}),
    ({"a": "f1", "b": "f2"}, {"a"}, {"a"}),
    ({"a": "f1"}, set(), set()),
    ({}, {"a"}, set()),
]


async def test_cert_pruner_drops_what_the_control_plane_no_longer_lists(monkeypatch):
    from owncdn.edge import certsync

    for held, listed, kept in PRUNES:
        reports = []
        monkeypatch.setattr(certsync, "_schedule_report", lambda agent, http: reports.append(True))
        agent = SimpleNamespace(edge=SimpleNamespace(certs=FakeCerts(held)))
        await certsync.cert_pruner(agent, None, listed)
        assert set(agent.edge.certs.ids()) == kept
        assert reports == ([True] if kept != set(held) else [])
