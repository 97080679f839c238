"""`address` index rows without the city and postal code, which `address-city` / `address-postalcode` hold

The `address` parameter indexed every string part of an address, so the city and the postal code of each
Organization and Location were stored twice (381 k of the national FINESS import's 3.53 M index rows). A
criterion on `address` now reads the rows of `address`, `address-city` and `address-postalcode`
(`SearchParam.includes`), and the extraction of `address` keeps line, text, district, state and country. This
removes the `address` rows that repeat a city or postal-code row of the same resource: the values an `address`
criterion can match are the same before and after. Downgrade puts them back from those rows.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TYPES = "('Location', 'Organization')"
PARTS = "('address-city', 'address-postalcode')"


def upgrade() -> None:
    op.execute(
        f"DELETE FROM idx_string WHERE param = 'address' AND res_type IN {TYPES} AND EXISTS ("
        "SELECT 1 FROM idx_string o WHERE o.resource_pk = idx_string.resource_pk"
        f" AND o.param IN {PARTS} AND o.exact = idx_string.exact)"
    )


def downgrade() -> None:
    op.execute(
        "INSERT INTO idx_string (resource_pk, res_type, param, grp, value, exact)"
        f" SELECT resource_pk, res_type, 'address', grp, value, exact FROM idx_string WHERE param IN {PARTS}"
        f" AND res_type IN {TYPES}"
    )
