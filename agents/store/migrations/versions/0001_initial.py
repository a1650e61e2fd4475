"""Tickets, feedback, audit and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-07-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("external_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("requester", sa.String(256)),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("assignee", sa.String(256)),
        sa.Column("team", sa.String(64)),
        sa.Column("priority", sa.String(8)),
        sa.Column("category", sa.String(64)),
        sa.Column("needs_human", sa.Boolean, nullable=False),
        sa.Column("reviewed", sa.Boolean, nullable=False),
        sa.Column("resolution", sa.Text),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(300), unique=True),
        sa.Column("body_hash", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("triaged_at", TS),
        sa.Column("first_response_at", TS),
        sa.Column("resolved_at", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_index("ix_tickets_team", "tickets", ["team"])
    op.create_index("ix_tickets_priority", "tickets", ["priority"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(40), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("predicted", sa.String(64)),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_feedback_ticket_id", "feedback", ["ticket_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(40)),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("tokens_in", sa.Integer),
        sa.Column("tokens_out", sa.Integer),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_audit_ticket_id", "audit", ["ticket_id"])
    op.create_index("ix_audit_kind_created", "audit", ["kind", "created_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("audit")
    op.drop_table("feedback")
    op.drop_table("tickets")
