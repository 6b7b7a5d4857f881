"""HTTP-facing shapes of the registry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from switchboard.config.bounds import check_overrides
from switchboard.schemas import JsonObject, SafeStr, Slug, StrictModel


@dataclass(frozen=True, slots=True)
class AgentFilters:
    tag: str | None = None
    team: str | None = None
    enabled: bool | None = None


Tag = Annotated[SafeStr, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
Name = Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]
ToolName = Annotated[SafeStr, StringConstraints(min_length=1, max_length=100, pattern=r"^[\w.-]+$")]
ModelName = Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]
Prompt = Annotated[SafeStr, StringConstraints(max_length=100_000)]
Description = Annotated[SafeStr, StringConstraints(max_length=10_000)]

ConfigOverrides = Annotated[JsonObject, AfterValidator(check_overrides)]
"""An agent's config overrides: JSON, bounded in keys, depth and size (422 beyond)."""

PROFILE_FIELDS = ("display_name", "description", "capabilities", "tags", "team", "enabled")
CASCADED_FIELDS = ("system_prompt", "model", "tools")


class AgentCreate(StrictModel):
    slug: Slug
    display_name: Name | None = None
    description: Description = ""
    system_prompt: Prompt | None = None
    model: ModelName | None = None
    tools: list[ToolName] | None = Field(default=None, max_length=64)
    capabilities: list[Tag] = Field(default_factory=list, max_length=64)
    tags: list[Tag] = Field(default_factory=list, max_length=64)
    team: Slug | None = None
    enabled: bool = True
    config: ConfigOverrides = Field(
        default_factory=dict, description="Overrides merged last into the config cascade."
    )


class AgentPatch(StrictModel):
    """Only the fields sent are changed; ``null`` clears a nullable field."""

    display_name: Name | None = None
    description: Description | None = None
    system_prompt: Prompt | None = None
    model: ModelName | None = None
    tools: list[ToolName] | None = Field(default=None, max_length=64)
    capabilities: list[Tag] | None = Field(default=None, max_length=64)
    tags: list[Tag] | None = Field(default=None, max_length=64)
    team: Slug | None = None
    enabled: bool | None = None
    config: ConfigOverrides | None = None


class AgentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    display_name: str
    description: str
    system_prompt: str | None
    model: str | None
    tools: list[str] | None
    capabilities: list[str]
    tags: list[str]
    team: str | None
    enabled: bool
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AgentPage(BaseModel):
    items: list[AgentOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class ConfigSource(BaseModel):
    key: str
    value: Any
    source: str = Field(description="'default', the config file it came from, or 'db'")


class ConfigExplained(BaseModel):
    account: str
    agent: str
    config: dict[str, Any]
    sources: list[ConfigSource]
