"""The run resource as clients see it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

ACTIVE_STATUSES = ("pending", "running")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
EventData = tuple[str, Any]  # (type, data): an event on its way to the database


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as the service hands it out (a snapshot, never a live row)."""

    id: uuid.UUID
    account_id: uuid.UUID
    agent_id: uuid.UUID
    agent_slug: str
    conversation_id: uuid.UUID
    queue_seq: int
    status: str
    multitask_strategy: str
    on_disconnect: str
    background: bool
    fingerprint: str
    stop_reason: str | None = None
    error_code: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    result: Any | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> RunView:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> RunView:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def ended(self, **changes: Any) -> RunView:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    type: str
    data: Any
    created_at: datetime


RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "interrupted"]
Strategy = Literal["enqueue", "reject", "interrupt", "rollback"]
OnDisconnect = Literal["cancel", "continue"]


class RunUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cached_tokens: int = Field(default=0, description="Of the input tokens, read from cache")


class RunResult(BaseModel):
    """What the run produced: its reply, and every provider call it made, with their cost."""

    reply: str
    llm_request_ids: list[uuid.UUID]
    usage: RunUsage
    cost_usd: str = Field(description="Exact decimal string, USD")


class RunError(BaseModel):
    code: str
    message: str
    error_class: str = Field(alias="class")


class RunOut(BaseModel):
    id: uuid.UUID
    agent_slug: str
    conversation_id: uuid.UUID
    status: RunStatus
    multitask_strategy: Strategy
    on_disconnect: OnDisconnect
    background: bool
    stop_reason: str | None = Field(
        description="Why a cancelled run stopped: cancel, interrupt or rollback"
    )
    result: RunResult | None = Field(
        description="Set when the run has ended; partial (spend so far) if it did not succeed"
    )
    error: RunError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: RunView) -> RunOut:
        error = None
        if run.error_code is not None:
            error = RunError.model_validate(
                {
                    "code": run.error_code,
                    "message": run.error_message or "",
                    "class": run.error_class or "fatal",
                }
            )
        return cls(
            id=run.id,
            agent_slug=run.agent_slug,
            conversation_id=run.conversation_id,
            status=run.status,
            multitask_strategy=run.multitask_strategy,
            on_disconnect=run.on_disconnect,
            background=run.background,
            stop_reason=run.stop_reason,
            result=RunResult.model_validate(run.result) if run.result else None,
            error=error,
            created_at=run.created_at or datetime.min,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class RunEventOut(BaseModel):
    seq: int
    type: str
    data: Any
    created_at: datetime
