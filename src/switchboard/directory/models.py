"""Directory entries and their indexed filter values.

Full-text indexes live outside the ORM because they differ per backend (created by migration
0004): on SQLite an FTS5 table ``directory_fts`` kept in sync with ``search_text`` by triggers,
on PostgreSQL a generated ``search_vector`` tsvector column with a GIN index."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db.base import Base, JSONValue, UTCDateTime, utcnow

# INTEGER PRIMARY KEY on SQLite (the rowid the FTS5 table points at), BIGINT identity elsewhere.
EntryId = BigInteger().with_variant(Integer(), "sqlite")


class DirectoryEntry(Base):
    __tablename__ = "directory_entries"
    __table_args__ = (UniqueConstraint("account_id", "directory", "external_id"),)

    id: Mapped[int] = mapped_column(EntryId, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE")
    )
    directory: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    search_text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, L2-normalised
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryValue(Base):
    """One filterable value of an entry: keyword/list/bool values in ``kw`` (case-folded; bools
    as 'true'/'false'), numbers in ``num``. A list field has one row per distinct item."""

    __tablename__ = "directory_values"
    __table_args__ = (
        Index(
            "ix_directory_values_keyword",
            "account_id",
            "directory",
            "field",
            "kw",
            "entry_id",
        ),
        Index(
            "ix_directory_values_number",
            "account_id",
            "directory",
            "field",
            "num",
            "entry_id",
        ),
        Index("ix_directory_values_entry_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(EntryId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        EntryId, ForeignKey("directory_entries.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    directory: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    kw: Mapped[str | None] = mapped_column(String(500))
    num: Mapped[float | None] = mapped_column(Float)
