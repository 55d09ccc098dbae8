"""Pruned releases: releases.manifest may be NULL, releases.pruned_at says since when.

Blob GC drops the manifest of a release outside the retention (``releasestore`` Rule
10): its row stays for the listing, the database no longer grows by a whole manifest
with every push for ever.

Revision ID: 0007_release_pruning
Revises: 0006_node_streams
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_release_pruning"
down_revision = "0006_node_streams"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.alter_column("manifest", existing_type=sa.JSON(), nullable=True)
        batch.add_column(sa.Column("pruned_at", sa.Double(), nullable=True))


def downgrade() -> None:
    # a pruned release has no manifest to give back: it goes (it could not be activated)
    op.execute("DELETE FROM releases WHERE pruned_at IS NOT NULL")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("pruned_at")
        batch.alter_column("manifest", existing_type=sa.JSON(), nullable=False)
