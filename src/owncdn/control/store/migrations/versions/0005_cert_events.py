"""Certificate history: cert_events (issued, renewed, uploaded, failed).

Revision ID: 0005_cert_events
Revises: 0004_releases
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_cert_events"
down_revision = "0004_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cert_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("directory", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("not_after", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cert_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_cert_events_cert_id_id", "cert_events", ["cert_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_cert_events_cert_id_id", table_name="cert_events")
    op.drop_table("cert_events")
