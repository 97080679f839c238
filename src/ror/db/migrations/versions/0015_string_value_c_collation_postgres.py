"""PostgreSQL: `idx_string.value` in the C collation, one index for equality, order and starts-with

Migration 0011 added `ix_idx_string_prefix` on `(res_type, param, value COLLATE "C")` beside
`ix_idx_string_lookup` on `(res_type, param, value)` in the database's default collation, because a starts-with
range is exact and indexable only in byte order. The normalised values (lower case, no accents) compare the same
way for equality in any deterministic collation, so the column itself now takes the C collation: the lookup index
serves the ranges too, the second index goes (one index fewer to maintain on every write, and 2.4 s of the
national FINESS import's index build), and sorting by a string parameter follows byte order as on SQLite, whose
BINARY collation compares the same way. SQLite: nothing to do.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_idx_string_prefix")
        op.execute('ALTER TABLE idx_string ALTER COLUMN value TYPE VARCHAR(500) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE idx_string ALTER COLUMN value TYPE VARCHAR(500) COLLATE "default"')
        op.execute(
            'CREATE INDEX IF NOT EXISTS ix_idx_string_prefix ON idx_string (res_type, param, (value COLLATE "C"))'
        )
