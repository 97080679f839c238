"""PostgreSQL: resource contents compressed with lz4 instead of pglz

Every stored FHIR JSON above ~2 kB is compressed by TOAST. With the default pglz, compressing the contents was
the largest single cost of a national import on PostgreSQL (COPY of 237,750 resources: 9.3 s of server CPU with
pglz, 5.4 s with lz4, same size on disk), and reading them back is faster too. Only new values are compressed the
new way (no rewrite). A server built without lz4 keeps pglz: the statement is skipped, not failed. SQLite: nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = (("resource", "content"), ("resource_version", "content"))


def _set(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    statements = " ".join(
        f"EXECUTE 'ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}';" for table, column in COLUMNS
    )
    op.execute(f"DO $$ BEGIN {statements} EXCEPTION WHEN feature_not_supported THEN NULL; END $$")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
