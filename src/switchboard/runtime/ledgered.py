"""The seam around every provider call, in the one admission order:
concurrency slot → rate limit → budget reservation + write-ahead ledger row → call →
settlement (ledger + budget) → release. Transient provider errors are retried with backoff and
full jitter, each attempt with its own slot, reservation and ledger row; a stream is retried
only if it failed before it was handed on. The release sits in a ``finally``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai import ModelResponse
from pydantic_ai import exceptions as pai
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from switchboard.errors import (
    BudgetExceeded,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    SwitchboardError,
    UpstreamRejected,
)
from switchboard.ledger.pricing import Cost, price_of
from switchboard.ledger.service import CallContext, LedgerService, TokenUsage
from switchboard.metrics import Metrics
from switchboard.retry import RetryPolicy
from switchboard.traffic.budgets import Reservation
from switchboard.traffic.limiter import Limiter
from switchboard.traffic.limits import Admission

RETRYABLE = (ProviderRateLimited, ProviderUnavailable, ProviderTimeout)
Status = Literal["complete", "error", "cancelled"]


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


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int  # for tpm: input (≈ bytes / 4) + max_tokens
    hold_nano_usd: int  # the most the call can cost: every input byte a token + max_tokens


@dataclass(slots=True)
class _Attempt:
    """One admitted attempt: its slot, its ledger row and budget reservation."""

    slot: AbstractAsyncContextManager[None]
    row_id: uuid.UUID | None = None
    reservation: Reservation | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Admission and retry settings of one run's provider calls."""

    limiter: Limiter
    admission: Admission
    retry: RetryPolicy
    max_tokens: int
    metrics: Metrics | None = None


class LedgeredModel(WrapperModel):
    def __init__(
        self,
        wrapped: Any,
        *,
        ledger: LedgerService,
        ctx: CallContext,
        traffic: Traffic,
        on_call: Callable[[CallRecord], None],
    ) -> None:
        super().__init__(wrapped)
        self._ledger = ledger
        self._ctx = ctx
        self._traffic = traffic
        self._on_call = on_call

    def _estimate(
        self, messages: list[ModelMessage], parameters: ModelRequestParameters
    ) -> Estimate:
        size = len(ModelMessagesTypeAdapter.dump_json(messages))
        size += sum(
            len(tool.name)
            + len(tool.description or "")
            + len(json.dumps(tool.parameters_json_schema))
            for tool in parameters.function_tools
        )
        max_tokens = self._traffic.max_tokens
        cost = price_of(
            model=self._ctx.model,
            provider=self._ctx.provider,
            input_tokens=size,
            output_tokens=max_tokens,
            cached_tokens=0,
            overrides=self._ctx.prices,
        )
        return Estimate(tokens=size // 4 + max_tokens, hold_nano_usd=cost.nano_usd)

    def _body(self, messages: list[ModelMessage]) -> Any | None:
        if not self._ctx.store_bodies:
            return None
        return ModelMessagesTypeAdapter.dump_python(messages, mode="json")

    async def _admit(self, messages: list[ModelMessage], estimate: Estimate) -> _Attempt:
        """Slot and rate limit, then the budget reservation and the pending row."""
        slot = self._traffic.limiter.admit(self._traffic.admission, tokens=estimate.tokens)
        queued = time.monotonic()
        await slot.__aenter__()
        metrics = self._traffic.metrics
        if metrics is not None:
            metrics.admitted(self._ctx.provider, time.monotonic() - queued)
        attempt = _Attempt(slot=slot)
        try:
            attempt.row_id, attempt.reservation = await self._ledger.open(
                self._ctx,
                request_body=self._body(messages),
                budget_hold_nano_usd=estimate.hold_nano_usd,
            )
        except BaseException as exc:
            await slot.__aexit__(None, None, None)
            if isinstance(exc, BudgetExceeded) and metrics is not None:
                metrics.budget_refused()
            raise
        attempt.started = time.monotonic()
        return attempt

    async def _settle(
        self,
        attempt: _Attempt,
        status: Status,
        usage: TokenUsage,
        *,
        error: SwitchboardError | None = None,
        response_id: str | None = None,
        response: ModelResponse | None = None,
    ) -> None:
        assert attempt.row_id is not None
        try:
            cost = await self._ledger.finish(
                self._ctx,
                attempt.row_id,
                status=status,
                usage=usage,
                latency_ms=int((time.monotonic() - attempt.started) * 1000),
                provider_response_id=response_id,
                error=error,
                reservation=attempt.reservation,
                response_body=self._body([response]) if response is not None else None,
            )
            self._on_call(CallRecord(row_id=attempt.row_id, usage=usage, cost=cost))
        finally:
            await attempt.slot.__aexit__(None, None, None)

    async def _failed_attempt(
        self, attempt: _Attempt, exc: Exception, *, number: int, started: float
    ) -> None:
        """Settle a failed attempt; return after the backoff if it may be retried, else raise
        the error in its class."""
        error = classify_provider_error(exc, self._ctx.model)
        await self._settle(attempt, "error", TokenUsage(), error=error)
        delay = self._retry_delay(error, number, started)
        if delay is None:
            raise error from exc
        await asyncio.sleep(delay)

    def _retry_delay(self, error: SwitchboardError, attempt: int, started: float) -> float | None:
        if not isinstance(error, RETRYABLE):
            return None
        delay = self._traffic.retry.delay(
            error, attempt=attempt, elapsed_s=time.monotonic() - started
        )
        if delay is not None and self._traffic.metrics is not None:
            self._traffic.metrics.retried(error)
        return delay

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        estimate = self._estimate(messages, model_request_parameters)
        started = time.monotonic()
        number = 0
        while True:
            number += 1
            attempt = await self._admit(messages, estimate)
            try:
                response = await self.wrapped.request(
                    messages, model_settings, model_request_parameters
                )
            except asyncio.CancelledError:
                await self._settle(attempt, "cancelled", TokenUsage())
                raise
            except Exception as exc:
                await self._failed_attempt(attempt, exc, number=number, started=started)
                continue
            await self._settle(
                attempt,
                "complete",
                token_usage(response.usage),
                response_id=response.provider_response_id,
                response=response,
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
        estimate = self._estimate(messages, model_request_parameters)
        started = time.monotonic()
        number = 0
        while True:  # retried only until the stream is open and handed on
            number += 1
            attempt = await self._admit(messages, estimate)
            opened = self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            )
            try:
                stream = await opened.__aenter__()
            except asyncio.CancelledError:
                await self._settle(attempt, "cancelled", TokenUsage())
                raise
            except Exception as exc:
                await self._failed_attempt(attempt, exc, number=number, started=started)
                continue
            break
        try:
            try:
                yield stream
            except BaseException as exc:
                await opened.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            await opened.__aexit__(None, None, None)
        except (asyncio.CancelledError, GeneratorExit):
            await self._settle(attempt, "cancelled", token_usage(stream.usage))
            raise
        except Exception as exc:
            error = classify_provider_error(exc, self._ctx.model)
            await self._settle(attempt, "error", token_usage(stream.usage), error=error)
            raise error from exc
        await self._settle(
            attempt,
            "complete",
            token_usage(stream.usage),
            response_id=stream.provider_response_id,
            response=stream.get(),
        )
