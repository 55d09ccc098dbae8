"""Release comments: releases.comment says why a release was pushed (`owncdn push -m`).

Releases stored before it have an empty comment, as versions applied without `-m` do.

Revision ID: 0008_release_comments
Revises: 0007_release_pruning
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_release_comments"
down_revision = "0007_release_pruning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # no server default (the model has none: the store always gives one): NULL, then ''
    op.add_column("releases", sa.Column("comment", sa.Text(), nullable=True))
    op.execute("UPDATE releases SET comment = ''")
    with op.batch_alter_table("releases") as batch:
        batch.alter_column("comment", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("comment")
