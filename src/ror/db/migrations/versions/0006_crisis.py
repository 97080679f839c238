"""crisis mode (Plan blanc / SSE, PMIE) declared for départements or a région

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "crisis",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("crisis_type", sa.String(length=4), nullable=False),
        sa.Column("scope_kind", sa.String(length=16), nullable=False),
        sa.Column("scope_codes", sa.String(length=200), nullable=False),
        sa.Column("freshness_minutes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_crisis_active", "crisis", ["ended_at", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_crisis_active", table_name="crisis")
    op.drop_table("crisis")
