"""`identifier:of-type` index rows keyed by the identifier's value

An of-type row held the identifier's type in `code` and its value in `text`, which no index covers: finding a
unit by its idExterneSynchro (the feeder's `PATCH Location?identifier=<idNatStruct>/<idExterneSynchro>`) read
every Location row of type 26 and filtered them on `text` — 1,351 rows and 82 ms on the Bretagne demo, a hundred
times more at national scale. The row now holds the value in `code` (the lookup index's third column: one index
probe) and the type code in `text`; the type's system stays in `system`. Values longer than `code` (255
characters) are cut, as the extraction now cuts them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # both engines evaluate every right-hand side on the row as it was: a swap
    op.execute("UPDATE idx_token SET code = substr(text, 1, 255), text = code WHERE param = 'identifier:of-type'")


def downgrade() -> None:
    op.execute("UPDATE idx_token SET code = text, text = code WHERE param = 'identifier:of-type'")
