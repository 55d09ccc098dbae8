"""Event streams of nodes: nodes.stream_id and nodes.stream_ended_at.

A node whose event stream ended (and that was not heard from since) stops counting
as in contact once the stream has been gone a few seconds (``owncdn.core.contact``),
whichever control-plane replica held the stream.

Revision ID: 0006_node_streams
Revises: 0005_cert_events
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_node_streams"
down_revision = "0005_cert_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("stream_id", sa.String(32), nullable=True))
    op.add_column("nodes", sa.Column("stream_ended_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("stream_ended_at")
        batch.drop_column("stream_id")
