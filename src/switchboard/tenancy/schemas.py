"""HTTP-facing shapes of the tenancy domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from switchboard.schemas import SafeStr, Slug, StrictModel

__all__ = [
    "AccountCreate",
    "AccountOut",
    "KeyCreate",
    "KeyCreated",
    "KeyOut",
    "KeyPage",
    "Slug",
    "StrictModel",
]

Name = Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]


class AccountCreate(StrictModel):
    slug: Slug
    name: Name


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime


class KeyCreate(StrictModel):
    name: Annotated[SafeStr, StringConstraints(max_length=200)] | None = None


class KeyCreated(BaseModel):
    id: uuid.UUID
    key: str = Field(description="The secret. Shown once; only its hash is stored.")
    prefix: str
    name: str | None


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyPage(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")
