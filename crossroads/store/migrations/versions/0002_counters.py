"""Shared counters table, for exact limits across processes without Redis.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", "idx"),
    )
    op.create_index("ix_counters_expires_at", "counters", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_counters_expires_at", table_name="counters")
    op.drop_table("counters")
