"""usage_daily: the per-day rollup of the ledger's final rows (per account, agent, provider,
model, status and error class, with a latency histogram), filled here from the rows already in
llm_requests and kept by every settlement from then on

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As of this revision (switchboard.ledger.rollup.LATENCY_BUCKETS_MS).
BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
KEY = ("account_id", "day", "agent_slug", "provider", "model", "status", "error_class")
COUNTERS = (
    ("requests", sa.Integer()),
    ("input_tokens", sa.BigInteger()),
    ("output_tokens", sa.BigInteger()),
    ("cached_tokens", sa.BigInteger()),
    ("cost_nano_usd", sa.BigInteger()),
    ("unpriced_requests", sa.Integer()),
    ("estimated_requests", sa.Integer()),
    ("estimated_input_tokens", sa.BigInteger()),
    ("estimated_output_tokens", sa.BigInteger()),
    ("estimated_cost_nano_usd", sa.BigInteger()),
    ("latency_count", sa.Integer()),
    ("latency_sum_ms", sa.BigInteger()),
    *((f"latency_le_{bound}", sa.Integer()) for bound in BUCKETS_MS),
    (f"latency_gt_{BUCKETS_MS[-1]}", sa.Integer()),
)


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent_slug", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_class", sa.String(length=20), nullable=False),
        sa.Column("account_slug", sa.String(length=64), nullable=False),
        *(sa.Column(name, type_, nullable=False, server_default="0") for name, type_ in COUNTERS),
        sa.PrimaryKeyConstraint(*KEY, name=op.f("pk_usage_daily")),
    )
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_day", ["day"], unique=False)
    _backfill()


def _backfill() -> None:
    """Roll up the final rows already in the ledger (the same aggregation as
    ``switchboard ledger rollup rebuild``, written out as of this revision)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    # The UTC date of created_at: SQLite stores the naive UTC time; PostgreSQL a timestamptz.
    day = "(created_at AT TIME ZONE 'UTC')::date" if postgres else "date(created_at)"
    estimated = "usage_source = 'estimated'"
    buckets, lower = [], None
    for bound in BUCKETS_MS:
        inside = f"latency_ms <= {bound}"
        if lower is not None:
            inside = f"latency_ms > {lower} AND {inside}"
        buckets.append(f"COUNT(id) FILTER (WHERE {inside})")
        lower = bound
    buckets.append(f"COUNT(id) FILTER (WHERE latency_ms > {BUCKETS_MS[-1]})")
    values = [
        "account_id",
        day,
        "COALESCE(agent_slug, '')",
        "provider",
        "model",
        "status",
        "COALESCE(error_class, '')",
        "MAX(account_slug)",
        "COUNT(id)",
        "COALESCE(SUM(input_tokens), 0)",
        "COALESCE(SUM(output_tokens), 0)",
        "COALESCE(SUM(cached_tokens), 0)",
        "COALESCE(SUM(cost_nano_usd), 0)",
        "COUNT(id) FILTER (WHERE NOT priced)",
        f"COUNT(id) FILTER (WHERE {estimated})",
        f"COALESCE(SUM(input_tokens) FILTER (WHERE {estimated}), 0)",
        f"COALESCE(SUM(output_tokens) FILTER (WHERE {estimated}), 0)",
        f"COALESCE(SUM(cost_nano_usd) FILTER (WHERE {estimated}), 0)",
        "COUNT(latency_ms)",
        "COALESCE(SUM(latency_ms), 0)",
        *buckets,
    ]
    columns = [*KEY, "account_slug", *(name for name, _ in COUNTERS)]
    op.execute(
        sa.text(
            f"INSERT INTO usage_daily ({', '.join(columns)}) "  # noqa: S608 - constants only
            f"SELECT {', '.join(values)} FROM llm_requests WHERE status <> 'pending' "
            "GROUP BY 1, 2, 3, 4, 5, 6, 7"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_day")
    op.drop_table("usage_daily")
