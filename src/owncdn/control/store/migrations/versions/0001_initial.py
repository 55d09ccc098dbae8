"""The initial tables: tokens, versions, nodes, purges, purge_acks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(16), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_node_id", "tokens", ["node_id"])

    op.create_table(
        "versions",
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("env", "number", name="pk_versions"),
    )

    op.create_table(
        "nodes",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("registered_at", sa.Double(), nullable=False),
        sa.Column("last_contact", sa.Double(), nullable=True),
        sa.Column("running_version", sa.Integer(), nullable=True),
        sa.Column("reported_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("kind", "name", name="uq_nodes_kind_name"),
    )
    op.create_index("ix_nodes_env", "nodes", ["env"])

    op.create_table(
        "purges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_purges"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_purges_env_id", "purges", ["env", "id"])

    op.create_table(
        "purge_acks",
        sa.Column("purge_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(16), nullable=False),
        sa.Column("ms", sa.Double(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["purge_id"], ["purges.id"], name="fk_purge_acks_purge_id_purges",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_purge_acks_node_id_nodes",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("purge_id", "node_id", name="pk_purge_acks"),
    )
    op.create_index("ix_purge_acks_node_id", "purge_acks", ["node_id"])


def downgrade() -> None:
    op.drop_table("purge_acks")
    op.drop_table("purges")
    op.drop_table("nodes")
    op.drop_table("versions")
    op.drop_table("tokens")
