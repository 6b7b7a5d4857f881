"""HTTP-facing shapes of the tenancy domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$"),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AccountCreate(StrictModel):
    slug: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime


class KeyCreate(StrictModel):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


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
