"""covering indexes for the live resources of a type (count, pk-ordered pages, _lastUpdated) without reading rows

Every search filters `res_type = ? AND deleted = false`; the existing (res_type, last_updated, pk) index does not
hold `deleted`, so counting the 120k Locations of the national demo read every row (content included).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resource_live", "resource", ["res_type", "deleted", "pk"])
    op.create_index("ix_resource_live_updated", "resource", ["res_type", "deleted", "last_updated", "pk"])


def downgrade() -> None:
    op.drop_index("ix_resource_live_updated", table_name="resource")
    op.drop_index("ix_resource_live", table_name="resource")
