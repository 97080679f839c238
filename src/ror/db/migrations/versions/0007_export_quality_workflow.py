"""bulk export jobs, quality/population indicator snapshots, offer change workflow

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "export_job",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("profile", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=200), nullable=True),
        sa.Column("transaction_time", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_export_job_status", "export_job", ["status", "created_at"])
    op.create_table(
        "quality_indicator",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("territory_kind", sa.String(length=16), nullable=False),
        sa.Column("territory_code", sa.String(length=8), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("kind", "period", "code", "territory_kind", "territory_code", name="uq_quality_indicator"),
    )
    op.create_table(
        "offer_change",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("establishment", sa.String(length=9), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_offer_change_status", "offer_change", ["status", "updated_at"])
    op.create_index("ix_offer_change_resource", "offer_change", ["res_type", "res_id"])
    op.create_table(
        "offer_change_transition",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("change_pk", PK, nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["change_pk"], ["offer_change.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_offer_change_transition_change", "offer_change_transition", ["change_pk"])


def downgrade() -> None:
    op.drop_index("ix_offer_change_transition_change", table_name="offer_change_transition")
    op.drop_table("offer_change_transition")
    op.drop_index("ix_offer_change_resource", table_name="offer_change")
    op.drop_index("ix_offer_change_status", table_name="offer_change")
    op.drop_table("offer_change")
    op.drop_table("quality_indicator")
    op.drop_index("ix_export_job_status", table_name="export_job")
    op.drop_table("export_job")
