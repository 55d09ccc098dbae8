"""Certificates and ACME: accounts, certificates, installs per node, challenges, locks, the order ledger.

Revision ID: 0003_certificates
Revises: 0002_edge_health
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_certificates"
down_revision = "0002_edge_health"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acme_accounts",
        sa.Column("directory", sa.String(500), nullable=False),
        sa.Column("key_pem", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("directory", name="pk_acme_accounts"),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("env", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("challenge", sa.String(16), nullable=False),
        sa.Column("directory", sa.Text(), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("not_before", sa.Double(), nullable=True),
        sa.Column("not_after", sa.Double(), nullable=True),
        sa.Column("renew_at", sa.Double(), nullable=True),
        sa.Column("ari_next", sa.Double(), nullable=True),
        sa.Column("force_renew", sa.Boolean(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.Double(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("warned_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_certificates"),
    )
    op.create_index("ix_certificates_env", "certificates", ["env"])
    op.create_table(
        "cert_installs",
        sa.Column("cert_id", sa.String(200), nullable=False),
        sa.Column("node_id", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_cert_installs_node_id_nodes",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cert_id", "node_id", name="pk_cert_installs"),
    )
    op.create_index("ix_cert_installs_node_id", "cert_installs", ["node_id"])
    op.create_table(
        "acme_challenges",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.Column("cert_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", "value", name="pk_acme_challenges"),
    )
    op.create_index("ix_acme_challenges_cert_id", "acme_challenges", ["cert_id"])
    op.create_table(
        "acme_locks",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_acme_locks"),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("cert_id", sa.String(200), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("directory", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_orders"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_acme_orders_domain", "acme_orders", ["domain"])


def downgrade() -> None:
    for table in ("acme_orders", "acme_locks", "acme_challenges", "cert_installs", "certificates",
                  "acme_accounts"):
        op.drop_table(table)
