"""Pushed releases: releases, current_releases, node_releases.

Revision ID: 0004_releases
Revises: 0003_certificates
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_releases"
down_revision = "0003_certificates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("manifest_id", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("env", "service", "number", name="pk_releases"),
    )
    op.create_table(
        "current_releases",
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.Double(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("env", "service", name="pk_current_releases"),
    )
    op.create_table(
        "node_releases",
        sa.Column("node_id", sa.String(16), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("serving", sa.Integer(), nullable=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_node_releases_node_id_nodes",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("node_id", "service", name="pk_node_releases"),
    )


def downgrade() -> None:
    op.drop_table("node_releases")
    op.drop_table("current_releases")
    op.drop_table("releases")
