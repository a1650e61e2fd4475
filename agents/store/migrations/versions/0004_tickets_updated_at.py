"""An index on tickets.updated_at: every process's ticket memory reads the tickets changed since its last look.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_updated_at", "tickets", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_updated_at", "tickets")
