"""regional modules: tension (TES) declarations, emergency-department activity, FHIR subscriptions and their outbox

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tension_declaration",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("finess", sa.String(length=9), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("organization_name", sa.String(length=300), nullable=True),
        sa.Column("region", sa.String(length=3), nullable=True),
        sa.Column("departement", sa.String(length=3), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("previous_level", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reasons", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("actions", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("declared_by", sa.String(length=200), nullable=False),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_tension_establishment", "tension_declaration", ["finess", "started_at"])
    op.create_index("ix_tension_region", "tension_declaration", ["region", "ended_at"])
    op.create_table(
        "urgences_report",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=True),
        sa.Column("organization_id", sa.String(length=64), nullable=True),
        sa.Column("finess", sa.String(length=9), nullable=True),
        sa.Column("region", sa.String(length=3), nullable=True),
        sa.Column("departement", sa.String(length=3), nullable=True),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        sa.Column("present", sa.Integer(), nullable=False),
        sa.Column("waiting_bed", sa.Integer(), nullable=False),
        sa.Column("passages_24h", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_urgences_service", "urgences_report", ["service_id", "observed_at"])
    op.create_index("ix_urgences_territory", "urgences_report", ["region", "observed_at"])
    op.create_table(
        "subscription",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("content", sa.String(length=16), nullable=False),
        sa.Column("heartbeat_s", sa.Integer(), nullable=True),
        sa.Column("heartbeat_due", sa.DateTime(), nullable=True),
        sa.Column("end_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("profile", sa.Integer(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_failure_at", sa.DateTime(), nullable=True),
        sa.Column("retry_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_subscription_type", "subscription", ["res_type", "status"])
    op.create_table(
        "subscription_outbox",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("event_number", sa.BigInteger(), nullable=False),
        sa.Column("focus_type", sa.String(length=40), nullable=True),
        sa.Column("focus_id", sa.String(length=64), nullable=True),
        sa.Column("focus_version", sa.Integer(), nullable=True),
        sa.Column("focus_content", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscription.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_subscription_outbox_due", "subscription_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_subscription_outbox_sub", "subscription_outbox", ["subscription_id", "event_number"])
    op.create_table(
        "subscription_error",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("outbox_pk", PK, nullable=True),
        sa.Column("event_number", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscription.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_subscription_error_sub", "subscription_error", ["subscription_id", "at"])


def downgrade() -> None:
    op.drop_table("subscription_error")
    op.drop_table("subscription_outbox")
    op.drop_table("subscription")
    op.drop_table("urgences_report")
    op.drop_table("tension_declaration")
