"""tickets.intake: the values a requester chose on the intake form (ticket type, ...), which models may read.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # tickets stored before have no intake values: an empty object, so every row reads the same way
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("intake", sa.JSON, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("intake")
