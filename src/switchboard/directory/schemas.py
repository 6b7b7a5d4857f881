"""HTTP-facing shapes of directories."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchboard.config.directories import DirectoryConfig
from switchboard.directory.models import DirectoryEntry
from switchboard.directory.service import ImportResult
from switchboard.schemas import JsonObject, StrictModel


class DirectoryOut(BaseModel):
    name: str
    description: str | None
    semantic: bool
    semantic_available: bool = Field(
        description="semantic is on and this server has an embedder (the 'semantic' extra)"
    )
    min_similarity: float
    fields: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, name: str, config: DirectoryConfig, *, embedder: bool) -> DirectoryOut:
        return cls(
            name=name,
            description=config.description,
            semantic=config.semantic,
            semantic_available=config.semantic and embedder,
            min_similarity=config.min_similarity,
            fields={
                field: {
                    "type": spec.type,
                    "filterable": spec.is_filterable,
                    "searchable": spec.is_searchable,
                    "required": spec.required,
                    **({"description": spec.description} if spec.description else {}),
                }
                for field, spec in config.fields.items()
            },
        )


class DirectoryDetail(DirectoryOut):
    entries: int


class DirectoryList(BaseModel):
    items: list[DirectoryOut]


class EntryPut(StrictModel):
    data: JsonObject = Field(description="The entry's fields, as the directory schema says")


class EntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    directory: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, entry: DirectoryEntry) -> EntryOut:
        return cls(
            id=entry.external_id,
            directory=entry.directory,
            data=entry.data,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
        )


class SearchHitOut(BaseModel):
    id: str
    data: dict[str, Any]
    score: float | None = Field(description="Higher is better; comparable only within one response")


class SearchOut(BaseModel):
    items: list[SearchHitOut]
    mode: str = Field(description="The ranking used: text, semantic, hybrid or filter")
    next_cursor: str | None


class ImportOut(BaseModel):
    directory: str
    total: int
    created: int
    updated: int
    embedded: int = Field(description="Entries given an embedding (semantic directories)")

    @classmethod
    def of(cls, directory: str, result: ImportResult) -> ImportOut:
        return cls(
            directory=directory,
            total=result.total,
            created=result.created,
            updated=result.updated,
            embedded=result.embedded,
        )
