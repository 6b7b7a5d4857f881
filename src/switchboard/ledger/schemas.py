from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from switchboard.ledger.models import LlmRequest
from switchboard.money import nano_to_usd_str

GroupBy = Literal["agent", "model", "day"]


@dataclass(frozen=True, slots=True)
class LedgerFilters:
    conversation_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    agent: str | None = None
    model: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cost_nano_usd: int
    unpriced_requests: int
    estimated_requests: int = 0
    estimated_input_tokens: int = 0
    estimated_output_tokens: int = 0
    estimated_cost_nano_usd: int = 0


@dataclass(frozen=True, slots=True)
class TotalsRow:
    status: str
    usage_source: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_nano_usd: int


class LlmRequestOut(BaseModel):
    id: uuid.UUID
    agent_slug: str | None
    conversation_id: uuid.UUID | None
    run_id: uuid.UUID
    kind: str
    provider: str
    model: str
    status: str
    usage_source: Literal["reported", "partial", "estimated"] = Field(
        description="reported: the provider's final usage; partial: what it reported before "
        "the call ended early; estimated: it reported nothing, the tokens are estimated"
    )
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: str
    priced: bool = Field(description="false: no price known for this model; cost_usd is 0")
    latency_ms: int | None
    provider_response_id: str | None
    error_code: str | None
    error_class: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: LlmRequest) -> LlmRequestOut:
        return cls(
            id=row.id,
            agent_slug=row.agent_slug,
            conversation_id=row.conversation_id,
            run_id=row.run_id,
            kind=row.kind,
            provider=row.provider,
            model=row.model,
            status=row.status,
            usage_source=row.usage_source,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cached_tokens=row.cached_tokens,
            cost_usd=nano_to_usd_str(row.cost_nano_usd),
            priced=row.priced,
            latency_ms=row.latency_ms,
            provider_response_id=row.provider_response_id,
            error_code=row.error_code,
            error_class=row.error_class,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


class LlmRequestPage(BaseModel):
    items: list[LlmRequestOut]
    next_cursor: str | None


class UsageOut(BaseModel):
    group: str | None = None
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: str
    unpriced_requests: int
    estimated_requests: int = Field(
        description="Calls whose provider reported no usage: their tokens are estimated"
    )
    estimated_input_tokens: int
    estimated_output_tokens: int
    estimated_cost_usd: str = Field(description="The part of cost_usd that is estimated")
    measured_cost_usd: str = Field(description="The part of cost_usd the provider reported")

    @classmethod
    def of(cls, row: UsageRow) -> UsageOut:
        return cls(
            group=row.group,
            requests=row.requests,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=nano_to_usd_str(row.cost_nano_usd),
            unpriced_requests=row.unpriced_requests,
            estimated_requests=row.estimated_requests,
            estimated_input_tokens=row.estimated_input_tokens,
            estimated_output_tokens=row.estimated_output_tokens,
            estimated_cost_usd=nano_to_usd_str(row.estimated_cost_nano_usd),
            measured_cost_usd=nano_to_usd_str(row.cost_nano_usd - row.estimated_cost_nano_usd),
        )


class UsageReport(BaseModel):
    group_by: str | None
    groups: list[UsageOut]
    total: UsageOut
