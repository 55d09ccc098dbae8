"""The store's part of edge health: what the monitor found, shared by every replica.

Rules:
1. One row per edge node (`edge_health`), deleted with its node. An edge without a
   row was never checked and counts as healthy (`owncdn.core.routing.health` Rule 4).
2. `record_checks` applies one round of results in one transaction, through the
   pure rule (`next_state`), so replicas sharing PostgreSQL agree on the state.
3. Replicas all run monitors: a result for an edge that some monitor recorded less
   than `min_gap` seconds ago is dropped, so an edge is counted about once per
   interval whatever the number of replicas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from owncdn.core.routing import CheckState, next_state

from .schema import EdgeHealthRow, NodeRow

MAX_ERROR = 500


@dataclass(frozen=True)
class EdgeHealthRecord:
    """An edge node and the monitor's verdict on it (never-checked: `checked_at` None)."""

    node_id: str
    name: str
    env: str
    location: str
    address: str
    healthy: bool
    successes: int
    failures: int
    checked_at: float | None
    changed_at: float | None
    error: str


@dataclass(frozen=True)
class CheckResult:
    node_id: str
    ok: bool
    error: str = ""


class EdgeHealthStore:
    """Mixed into `Store`: uses its `_read`, `_write` and `_now`."""

    def edge_health(self, env: str | None = None) -> list[EdgeHealthRecord]:
        """Every edge node (of `env`), by name, with its health."""
        query = (select(NodeRow, EdgeHealthRow).outerjoin(EdgeHealthRow, EdgeHealthRow.node_id == NodeRow.id)
                 .where(NodeRow.kind == "edge").order_by(NodeRow.name))
        if env is not None:
            query = query.where(NodeRow.env == env)
        return self._read(lambda s: [_record(node, row) for node, row in s.execute(query)])

    def record_checks(self, results: Iterable[CheckResult], *, fall: int, rise: int,
                      min_gap: float = 0.0) -> list[EdgeHealthRecord]:
        """Apply one round of check results (Rules 2 and 3); returns the edges whose
        health flipped."""
        results = list(results)

        def work(s: Session) -> list[EdgeHealthRecord]:
            now = self._now()
            flipped = []
            for result in results:
                node = s.get(NodeRow, result.node_id)
                if node is None:
                    continue  # deleted since the round began
                row = s.get(EdgeHealthRow, result.node_id)
                if row is not None and now - row.checked_at < min_gap:
                    continue
                before = CheckState() if row is None else CheckState(row.healthy, row.successes, row.failures)
                after = next_state(before, result.ok, fall, rise)
                if row is None:
                    row = EdgeHealthRow(node_id=result.node_id, changed_at=now)
                    s.add(row)
                elif after.healthy != before.healthy:
                    row.changed_at = now
                row.healthy, row.successes, row.failures = after.healthy, after.successes, after.failures
                row.checked_at = now
                row.error = "" if result.ok else result.error[:MAX_ERROR]
                if after.healthy != before.healthy:
                    flipped.append(_record(node, row))
            return flipped

        return self._write(work, "recording edge health checks")


def _record(node: NodeRow, row: EdgeHealthRow | None) -> EdgeHealthRecord:
    if row is None:
        return EdgeHealthRecord(node.id, node.name, node.env, node.location, node.address,
                                True, 0, 0, None, None, "")
    return EdgeHealthRecord(node.id, node.name, node.env, node.location, node.address, row.healthy,
                            row.successes, row.failures, row.checked_at, row.changed_at, row.error)
