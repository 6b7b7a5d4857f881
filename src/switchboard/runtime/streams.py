"""How a provider's stream is judged: complete only with its finish reason; its usage reported,
partial or estimated; the events read ahead put back in front of the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic_ai.messages import (
    ModelResponseStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.models import StreamedResponse
from pydantic_ai.models.openai import OpenAIStreamedResponse
from pydantic_ai.usage import RequestUsage

from switchboard.ledger.service import TokenUsage


def measured(usage: RequestUsage) -> bool:
    return bool(usage.input_tokens or usage.output_tokens)


def token_usage(
    usage: RequestUsage, *, final: bool = True, input_estimate: int = 0, output_estimate: int = 0
) -> TokenUsage:
    """The provider's numbers — ``reported`` when the call finished and the provider reported
    them, ``partial`` when it ended early with some reported — else the estimate."""
    if measured(usage) and not (final and usage.unmeasured_requests):
        return TokenUsage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cached_tokens=usage.cache_read_tokens or 0,
            source="reported" if final else "partial",
        )
    return TokenUsage(
        input_tokens=input_estimate, output_tokens=output_estimate, source="estimated"
    )


def visible(event: ModelResponseStreamEvent) -> bool:
    """An event a client watching the run live is handed (text)."""
    if isinstance(event, PartStartEvent):
        return isinstance(event.part, TextPart) and bool(event.part.content)
    if isinstance(event, PartDeltaEvent):
        return isinstance(event.delta, TextPartDelta) and bool(event.delta.content_delta)
    return False


def cut(stream: StreamedResponse) -> bool:
    """The stream reached its end without the provider's finish reason (OpenAI-compatible
    chat streams; other adapters report their own truncation as errors)."""
    if not isinstance(stream, OpenAIStreamedResponse) or stream.cancelled:
        return False
    if getattr(stream, "_has_refusal", False):
        return False
    return not (stream.provider_details or {}).get("finish_reason")


async def replay(
    events: list[ModelResponseStreamEvent], rest: AsyncIterator[ModelResponseStreamEvent] | None
) -> AsyncIterator[ModelResponseStreamEvent]:
    try:
        for event in events:
            yield event
        if rest is not None:
            async for event in rest:
                yield event
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()
