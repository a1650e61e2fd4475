"""Connectors: the outbox of write-backs, the vendor events already handled, backfill cursors, and an index to find
a ticket by its vendor id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.String(40), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_until", TS),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivered_at", TS),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_ticket_id", "outbox", ["ticket_id"])
    op.create_index("ix_tickets_channel_external_id", "tickets", ["channel", "external_id"])
    op.create_table(
        "connector_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.String(40)),
        sa.Column("received_at", TS, nullable=False),
        sa.UniqueConstraint("system", "event_id", name="uq_connector_events_system_event"),
    )
    op.create_table(
        "connector_cursors",
        sa.Column("system", sa.String(16), primary_key=True),
        sa.Column("since", TS, nullable=False),
        sa.Column("cursor", sa.Text),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("tickets", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connector_cursors")
    op.drop_table("connector_events")
    op.drop_table("outbox")
    op.drop_index("ix_tickets_channel_external_id", "tickets")
