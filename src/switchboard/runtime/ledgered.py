"""The seam around every provider call: a write-ahead ledger row before the request leaves,
one conditional update after it — on success, on error, and on cancellation (client gone),
with whatever usage the stream had reported so far."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic_ai import ModelResponse
from pydantic_ai import exceptions as pai
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from switchboard.errors import (
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    SwitchboardError,
    UpstreamRejected,
)
from switchboard.ledger.pricing import Cost
from switchboard.ledger.service import CallContext, LedgerService, TokenUsage


@dataclass(frozen=True, slots=True)
class CallRecord:
    row_id: uuid.UUID
    usage: TokenUsage
    cost: Cost


def token_usage(usage: RequestUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=usage.cache_read_tokens or 0,
    )


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc.__cause__, "response", None)
    headers = getattr(response, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def classify_provider_error(exc: Exception, model: str) -> SwitchboardError:
    if isinstance(exc, SwitchboardError):
        return exc
    detail = f"model '{model}': {exc}"
    if isinstance(exc, pai.ModelRateLimitError | pai.ModelQuotaExceededError):
        return ProviderRateLimited(detail, retry_after_s=_retry_after(exc))
    if isinstance(exc, pai.ModelTimeoutError | pai.ModelRequestTimeout):
        return ProviderTimeout(detail)
    if isinstance(exc, pai.ModelAuthenticationError):
        return ProviderMisconfigured(detail)
    if isinstance(exc, pai.ModelUnavailableError | pai.ModelServerError | pai.ModelConnectionError):
        return ProviderUnavailable(detail, retry_after_s=_retry_after(exc))
    if isinstance(exc, pai.ModelHTTPError):
        if exc.status_code == 429:
            return ProviderRateLimited(detail, retry_after_s=_retry_after(exc))
        if exc.status_code >= 500:
            return ProviderUnavailable(detail, retry_after_s=_retry_after(exc))
        return UpstreamRejected(detail)
    if isinstance(exc, pai.ModelAPIError | pai.UnexpectedModelBehavior):
        return UpstreamRejected(detail)
    if isinstance(exc, TimeoutError):
        return ProviderTimeout(detail)
    if isinstance(exc, OSError | ConnectionError):
        return ProviderUnavailable(detail)
    return UpstreamRejected(f"{detail} ({type(exc).__name__})")


class LedgeredModel(WrapperModel):
    def __init__(
        self,
        wrapped: Any,
        *,
        ledger: LedgerService,
        ctx: CallContext,
        on_call: Callable[[CallRecord], None],
    ) -> None:
        super().__init__(wrapped)
        self._ledger = ledger
        self._ctx = ctx
        self._on_call = on_call

    def _body(self, messages: list[ModelMessage]) -> Any | None:
        if not self._ctx.store_bodies:
            return None
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        return ModelMessagesTypeAdapter.dump_python(messages, mode="json")

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        row_id = await self._ledger.open(self._ctx, request_body=self._body(messages))
        started = time.monotonic()
        try:
            response = await self.wrapped.request(
                messages, model_settings, model_request_parameters
            )
        except asyncio.CancelledError:
            await self._settle(row_id, started, "cancelled", TokenUsage())
            raise
        except Exception as exc:
            error = classify_provider_error(exc, self._ctx.model)
            await self._settle(row_id, started, "error", TokenUsage(), error=error)
            raise error from exc
        await self._settle(
            row_id,
            started,
            "complete",
            token_usage(response.usage),
            response_id=response.provider_response_id,
        )
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        row_id = await self._ledger.open(self._ctx, request_body=self._body(messages))
        started = time.monotonic()
        stream: StreamedResponse | None = None
        try:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
        except (asyncio.CancelledError, GeneratorExit):
            usage = token_usage(stream.usage) if stream is not None else TokenUsage()
            await self._settle(row_id, started, "cancelled", usage)
            raise
        except Exception as exc:
            usage = token_usage(stream.usage) if stream is not None else TokenUsage()
            error = classify_provider_error(exc, self._ctx.model)
            await self._settle(row_id, started, "error", usage, error=error)
            raise error from exc
        assert stream is not None
        await self._settle(
            row_id,
            started,
            "complete",
            token_usage(stream.usage),
            response_id=stream.provider_response_id,
        )

    async def _settle(
        self,
        row_id: uuid.UUID,
        started: float,
        status: Any,
        usage: TokenUsage,
        *,
        error: SwitchboardError | None = None,
        response_id: str | None = None,
    ) -> None:
        cost = await self._ledger.finish(
            self._ctx,
            row_id,
            status=status,
            usage=usage,
            latency_ms=int((time.monotonic() - started) * 1000),
            provider_response_id=response_id,
            error=error,
        )
        self._on_call(CallRecord(row_id=row_id, usage=usage, cost=cost))
