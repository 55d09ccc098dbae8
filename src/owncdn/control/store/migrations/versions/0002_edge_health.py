"""The health monitor's table: edge_health (one row per checked edge node).

Revision ID: 0002_edge_health
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_edge_health"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_health",
        sa.Column("node_id", sa.String(16), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.Double(), nullable=False),
        sa.Column("changed_at", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_edge_health_node_id_nodes",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("node_id", name="pk_edge_health"),
    )


def downgrade() -> None:
    op.drop_table("edge_health")
