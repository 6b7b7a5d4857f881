"""llm_requests by run: the ledger rows of one run (the OpenAI surface's answers, the
console's run page) without a scan of the account's rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_llm_requests_account_id_run_id", "llm_requests", ["account_id", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_llm_requests_account_id_run_id", table_name="llm_requests")
