"""ledger owners: process leases, the owner of every ledger row, usage sources, budget holds

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "process_leases",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_process_leases")),
    )
    with op.batch_alter_table("process_leases", schema=None) as batch_op:
        batch_op.create_index("ix_process_leases_expires_at", ["expires_at"], unique=False)

    with op.batch_alter_table("llm_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        # Rows written before this revision carry the provider's reported usage.
        batch_op.add_column(
            sa.Column(
                "usage_source", sa.String(length=10), nullable=False, server_default="reported"
            )
        )
        batch_op.add_column(
            sa.Column("budget_hold_nano_usd", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("budget_period_ids", JSON, nullable=True))
        batch_op.drop_index("ix_llm_requests_status_deadline_at")
        batch_op.create_index(
            "ix_llm_requests_status_owner_id", ["status", "owner_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("llm_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_requests_status_owner_id")
        batch_op.create_index(
            "ix_llm_requests_status_deadline_at", ["status", "deadline_at"], unique=False
        )
        batch_op.drop_column("budget_period_ids")
        batch_op.drop_column("budget_hold_nano_usd")
        batch_op.drop_column("usage_source")
        batch_op.drop_column("owner_id")
    with op.batch_alter_table("process_leases", schema=None) as batch_op:
        batch_op.drop_index("ix_process_leases_expires_at")
    op.drop_table("process_leases")
