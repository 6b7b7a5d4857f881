"""runs by account: the console's runs page lists an account's runs newest first without a
scan of the table

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_runs_account_id_created_at", "runs", ["account_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_account_id_created_at", table_name="runs")
