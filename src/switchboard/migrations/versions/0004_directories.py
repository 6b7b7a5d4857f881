"""directories: entries, number fields and backend-specific full-text indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTRY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# SQLite: an external-content FTS5 table over search_text and facet_text, kept in sync by
# triggers (so every write path, upserts included, updates the index in the same transaction).
SQLITE_FTS = [
    """CREATE VIRTUAL TABLE directory_fts USING fts5(
        search_text, facet_text, content='directory_entries', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER directory_entries_fts_insert AFTER INSERT ON directory_entries BEGIN
        INSERT INTO directory_fts(rowid, search_text, facet_text)
        VALUES (new.id, new.search_text, new.facet_text);
    END""",
    """CREATE TRIGGER directory_entries_fts_delete AFTER DELETE ON directory_entries BEGIN
        INSERT INTO directory_fts(directory_fts, rowid, search_text, facet_text)
        VALUES ('delete', old.id, old.search_text, old.facet_text);
    END""",
    """CREATE TRIGGER directory_entries_fts_update
    AFTER UPDATE OF search_text, facet_text ON directory_entries BEGIN
        INSERT INTO directory_fts(directory_fts, rowid, search_text, facet_text)
        VALUES ('delete', old.id, old.search_text, old.facet_text);
        INSERT INTO directory_fts(rowid, search_text, facet_text)
        VALUES (new.id, new.search_text, new.facet_text);
    END""",
]
SQLITE_FTS_DROP = [
    "DROP TRIGGER IF EXISTS directory_entries_fts_update",
    "DROP TRIGGER IF EXISTS directory_entries_fts_delete",
    "DROP TRIGGER IF EXISTS directory_entries_fts_insert",
    "DROP TABLE IF EXISTS directory_fts",
]
# PostgreSQL: a generated tsvector column (words stemmed in English, facet tokens as they are)
# with a GIN index.
POSTGRES_FTS = [
    """ALTER TABLE directory_entries ADD COLUMN search_vector tsvector
        GENERATED ALWAYS AS (
            to_tsvector('english', search_text) || to_tsvector('simple', facet_text)
        ) STORED""",
    """CREATE INDEX ix_directory_entries_search_vector ON directory_entries
        USING gin (search_vector)""",
]


def upgrade() -> None:
    op.create_table(
        "directory_entries",
        sa.Column("id", ENTRY_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("directory", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("facet_text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_directory_entries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_entries")),
        sa.UniqueConstraint(
            "account_id",
            "directory",
            "external_id",
            name=op.f("uq_directory_entries_account_id_directory_external_id"),
        ),
    )
    op.create_table(
        "directory_numbers",
        sa.Column("entry_id", ENTRY_ID, nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("num", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["directory_entries.id"],
            name=op.f("fk_directory_numbers_entry_id_directory_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "field", name=op.f("pk_directory_numbers")),
    )
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_FTS if dialect == "sqlite" else POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS_DROP:
            op.execute(statement)
    op.drop_table("directory_numbers")
    op.drop_table("directory_entries")
