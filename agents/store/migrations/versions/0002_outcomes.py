"""Outcomes: the agent's final value of each predicted field, for shadow agreement.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(40), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("predicted", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("final", sa.String(64), nullable=False),
        sa.Column("agreed", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("ticket_id", "field", name="uq_outcomes_ticket_field"),
    )
    op.create_index("ix_outcomes_updated_at", "outcomes", ["updated_at"])


def downgrade() -> None:
    op.drop_table("outcomes")
