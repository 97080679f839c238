"""Search-index indexes for correlated probes: (resource_pk, param) on every index table, and resource_pk as the
last column of the token lookup, so that EXISTS(…) per candidate resource is a point lookup (found by
EXPLAIN QUERY PLAN: SQLite scanned every matching token row for each candidate, O(n²)).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("idx_token", "idx_string", "idx_number", "idx_quantity", "idx_date", "idx_reference")


def upgrade() -> None:
    for t in TABLES:
        op.drop_index(f"ix_{t}_pk", table_name=t)
        op.create_index(f"ix_{t}_pk", t, ["resource_pk", "param"])
    op.drop_index("ix_idx_token_lookup", table_name="idx_token")
    op.create_index("ix_idx_token_lookup", "idx_token", ["res_type", "param", "code", "system", "resource_pk"])


def downgrade() -> None:
    op.drop_index("ix_idx_token_lookup", table_name="idx_token")
    op.create_index("ix_idx_token_lookup", "idx_token", ["res_type", "param", "code", "system"])
    for t in TABLES:
        op.drop_index(f"ix_{t}_pk", table_name=t)
        op.create_index(f"ix_{t}_pk", t, ["resource_pk"])
