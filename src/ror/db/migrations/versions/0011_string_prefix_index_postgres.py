"""PostgreSQL: a byte-ordered (C collation) index for starts-with string search

String search (default modifier: starts-with, on the normalised value) is compiled as a range
`value >= p AND value < p || U+10FFFF`. Under the database's default collation (e.g. en_US.UTF-8) that range is
neither correct for every string nor able to use a plain index, and `LIKE 'p%'` cannot use one either; in the C
collation (byte order) the range is exact and indexable, also with generic prepared plans. SQLite compares in
byte order already (BINARY collation): nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_idx_string_prefix ON idx_string (res_type, param, (value COLLATE "C"))')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_idx_string_prefix")
