from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from switchboard.schemas import SafeStr, StrictModel

Participant = Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]


class DiscussionIn(StrictModel):
    prompt: Annotated[SafeStr, StringConstraints(min_length=1, max_length=50_000)]
    participants: list[Participant] = Field(
        min_length=1,
        max_length=20,
        description="Agent slugs of this account, or model strings ('demo', 'openai:gpt-4o')",
    )
    rounds: int = Field(default=1, ge=1, le=5)
    synthesizer: Participant | None = None
    quorum: int | None = Field(default=None, ge=1, description="Answers that end a round early")
    deadline_s: float | None = Field(default=None, gt=0, le=600)

    @model_validator(mode="after")
    def _quorum_fits(self) -> DiscussionIn:
        if self.quorum is not None and self.quorum > len(self.participants):
            raise ValueError("quorum cannot exceed the number of participants")
        return self


class ErrorOut(BaseModel):
    code: str
    message: str
    retryable: bool


class AnswerOut(BaseModel):
    participant: str
    answer: str | None
    error: ErrorOut | None
    llm_request_ids: list[uuid.UUID]


class DiscussionOut(BaseModel):
    id: uuid.UUID
    rounds: list[list[AnswerOut]]
    synthesis: AnswerOut | None
    llm_request_ids: list[uuid.UUID]
    cost_usd: str
