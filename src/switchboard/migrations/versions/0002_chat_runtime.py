"""chat runtime: conversations, messages, ledger, memories

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:50:43.590693
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("account_slug", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("agent_slug", sa.String(length=64), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("priced", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("provider_response_id", sa.String(length=200), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_class", sa.String(length=20), nullable=True),
        sa.Column("request_body", JSON, nullable=True),
        sa.Column("response_body", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_requests")),
    )
    with op.batch_alter_table("llm_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_llm_requests_account_id_agent_slug_created_at",
            ["account_id", "agent_slug", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_llm_requests_account_id_conversation_id_created_at",
            ["account_id", "conversation_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_llm_requests_account_id_created_at",
            ["account_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_llm_requests_account_id_status_created_at",
            ["account_id", "status", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_llm_requests_status_deadline_at", ["status", "deadline_at"], unique=False
        )

    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("agent_slug", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=True),
        sa.Column("default_key", sa.String(length=300), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("summary_upto_seq", sa.Integer(), nullable=False),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_conversations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint("default_key", name=op.f("uq_conversations_default_key")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversations_account_id_agent_slug_created_at",
            ["account_id", "agent_slug", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_conversations_account_id_created_at",
            ["account_id", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "memories",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("agent_slug", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_memories_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "agent_slug", "key", name=op.f("pk_memories")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("conversation_id", "seq", name=op.f("uq_messages_conversation_id_seq")),
    )


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("memories")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_account_id_created_at")
        batch_op.drop_index("ix_conversations_account_id_agent_slug_created_at")

    op.drop_table("conversations")
    with op.batch_alter_table("llm_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_requests_status_deadline_at")
        batch_op.drop_index("ix_llm_requests_account_id_status_created_at")
        batch_op.drop_index("ix_llm_requests_account_id_created_at")
        batch_op.drop_index("ix_llm_requests_account_id_conversation_id_created_at")
        batch_op.drop_index("ix_llm_requests_account_id_agent_slug_created_at")

    op.drop_table("llm_requests")
