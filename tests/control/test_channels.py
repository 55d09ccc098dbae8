"""State channels on the event stream: changed keys sent once, deleted keys announced."""

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
    assert cursor.changes(ctx, None) == []
    channel.state["a"] = (1, {"value": "x"})
    channel.state["b"] = (1, {"value": "y"})
    assert cursor.changes(ctx, None) == [("thing", {"key": "a", "value": "x"}), ("thing", {"key": "b", "value": "y"})]
    assert cursor.changes(ctx, None) == []
    channel.state["a"] = (2, {"value": "z"})
    del channel.state["b"]
    assert cursor.changes(ctx, None) == [("thing", {"key": "a", "value": "z"}), ("thing", {"key": "b", "deleted": True})]
    assert cursor.changes(ctx, None) == []
    # a new stream (a reconnect) starts from nothing and gets the whole state again
    assert ChannelCursor().changes(ctx, None) == [("thing", {"key": "a", "value": "z"})]
