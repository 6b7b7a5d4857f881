"""Directory entries and their number fields.

Full-text indexes live outside the ORM because they differ per backend (created by migration
0004): on SQLite an FTS5 table ``directory_fts`` over ``search_text`` and ``facet_text``, kept in
sync by triggers; on PostgreSQL a generated ``search_vector`` tsvector column with a GIN index.
Filters on keyword, list and bool fields are facet tokens in that same index, so a text + filter
search is one index intersection."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
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
    # Tokens for the account+directory scope and every keyword/list/bool value (see facets.py).
    facet_text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, L2-normalised
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryNumber(Base):
    """A number field of an entry, for range filters (keyword, list and bool filters are facet
    tokens in the full-text index instead)."""

    __tablename__ = "directory_numbers"

    entry_id: Mapped[int] = mapped_column(
        EntryId, ForeignKey("directory_entries.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    num: Mapped[float] = mapped_column(Float)
