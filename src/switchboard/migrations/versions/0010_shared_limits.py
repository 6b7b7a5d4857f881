"""shared limits: provider concurrency slots (leases) and rpm/tpm windows kept in the database,
so that several server processes without Redis share them (SWITCHBOARD_SHARED_LIMITS)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limiter_slots",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("member", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "member", name=op.f("pk_limiter_slots")),
    )
    op.create_table(
        "limiter_hits",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("member", sa.String(length=32), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "at", "member", name=op.f("pk_limiter_hits")),
    )


def downgrade() -> None:
    op.drop_table("limiter_hits")
    op.drop_table("limiter_slots")
