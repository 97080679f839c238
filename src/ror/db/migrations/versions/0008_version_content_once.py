"""resource_version.content nullable: the current version's content lives once, in resource.content

A NULL content in resource_version means "this is the current version; read resource.content". When a version
is superseded (update, delete) the store first copies the current content into its version row. Rows written
before this migration keep their content (readers take the version's content when present).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resource_version") as batch:
        batch.alter_column("content", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.execute(
        "UPDATE resource_version SET content = (SELECT r.content FROM resource r WHERE r.pk = resource_pk)"
        " WHERE content IS NULL"
    )
    with op.batch_alter_table("resource_version") as batch:
        batch.alter_column("content", existing_type=sa.Text(), nullable=False)
