"""The seam around every provider call, in the one admission order:
concurrency slot → rate limit → budget reservation + write-ahead ledger row → call →
settlement (ledger + budget) → release. Transient provider errors are retried with backoff and
full jitter, each attempt with its own slot, reservation and ledger row. The release sits in a
``finally``.

A stream is complete only when the provider says so (its finish reason): one that ends without
it raises ``PROVIDER_STREAM_CUT``. Events are read ahead until the first one a client could see
(text), or — for a run nobody watches live — to the end, so a stream cut before anything was
handed on is retried like any transient error; after that, the run ends with the error and the
truncated text is never a finished reply. Tokens the provider never reported are estimated and
marked so (``usage_source``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai import ModelResponse
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponseStreamEvent
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from switchboard.errors import (
    BudgetExceeded,
    ProviderRateLimited,
    ProviderStreamCut,
    ProviderTimeout,
    ProviderUnavailable,
    SwitchboardError,
)
from switchboard.ledger.estimate import worst_case_input
from switchboard.ledger.service import CallContext, LedgerService, TokenUsage
from switchboard.metrics import Metrics
from switchboard.money import Cost, price_of
from switchboard.retry import RetryPolicy
from switchboard.runtime.estimate import estimate_request, estimate_response
from switchboard.runtime.provider_errors import classify_provider_error, http_status_of
from switchboard.runtime.streams import cut, replay, token_usage, visible
from switchboard.traffic.budgets import Reservation
from switchboard.traffic.limiter import Limiter
from switchboard.traffic.limits import Admission

__all__ = ["CallRecord", "LedgeredModel", "Traffic", "classify_provider_error", "token_usage"]

RETRYABLE = (ProviderRateLimited, ProviderUnavailable, ProviderTimeout, ProviderStreamCut)
DEFAULT_BUDGET_WAIT_S = 30.0  # for models without a provider queue (the offline demo)
Status = Literal["complete", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    row_id: uuid.UUID
    usage: TokenUsage
    cost: Cost


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int  # for tpm: the typical input + max_tokens
    input_tokens: int  # the typical input (ledger/estimate.py): the pending row's estimate
    hold_nano_usd: int  # the worst case: input with a margin + max_tokens at the output price


@dataclass(slots=True)
class _Attempt:
    """One admitted attempt: its slot, its ledger row and budget reservation."""

    slot: AbstractAsyncContextManager[None]
    row_id: uuid.UUID | None = None
    reservation: Reservation | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Admission and retry settings of one run's provider calls. ``buffered``: nobody watches
    the run live, so streams are read to their end before anything is handed on."""

    limiter: Limiter
    admission: Admission
    retry: RetryPolicy
    max_tokens: int
    metrics: Metrics | None = None
    buffered: bool = False


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
        typical = estimate_request(messages, parameters)
        max_tokens = self._traffic.max_tokens
        worst = price_of(
            model=self._ctx.model,
            provider=self._ctx.provider,
            input_tokens=worst_case_input(typical),
            output_tokens=max_tokens,
            cached_tokens=0,
            overrides=self._ctx.prices,
        )
        return Estimate(
            tokens=typical + max_tokens, input_tokens=typical, hold_nano_usd=worst.nano_usd
        )

    def _body(self, messages: list[ModelMessage]) -> Any | None:
        if not self._ctx.store_bodies:
            return None
        return ModelMessagesTypeAdapter.dump_python(messages, mode="json")

    async def _admit(self, messages: list[ModelMessage], estimate: Estimate) -> _Attempt:
        """Slot and rate limit, then the budget reservation and the pending row."""
        admission = self._traffic.admission
        slot = self._traffic.limiter.admit(admission, tokens=estimate.tokens)
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
                estimated_input_tokens=estimate.input_tokens,
                budget_wait_s=(
                    admission.queue_timeout_s if admission.specs else DEFAULT_BUDGET_WAIT_S
                ),
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

    def _error_usage(self, exc: BaseException, estimate: Estimate) -> TokenUsage:
        """An HTTP error status is the provider's word that nothing was billed; after a
        timeout or a lost connection the prompt may have been processed: estimated."""
        if http_status_of(exc) is not None:
            return TokenUsage()
        return TokenUsage(input_tokens=estimate.input_tokens, source="estimated")

    def _stream_usage(
        self, stream: StreamedResponse, estimate: Estimate, *, final: bool
    ) -> TokenUsage:
        return token_usage(
            stream.usage,
            final=final,
            input_estimate=estimate.input_tokens,
            output_estimate=estimate_response(stream.get()),
        )

    async def _failed_attempt(
        self,
        attempt: _Attempt,
        error: SwitchboardError,
        usage: TokenUsage,
        *,
        number: int,
        started: float,
    ) -> None:
        """Settle a failed attempt; return after the backoff if it may be retried, else raise
        the error in its class."""
        await self._settle(attempt, "error", usage, error=error)
        delay = self._retry_delay(error, number, started)
        if delay is None:
            raise error
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

    def _stream_cut(self) -> ProviderStreamCut:
        return ProviderStreamCut(
            f"model '{self._ctx.model}': the provider's stream ended before its final chunk"
        )

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
                unknown = TokenUsage(input_tokens=estimate.input_tokens, source="estimated")
                await self._settle(attempt, "cancelled", unknown)
                raise
            except Exception as exc:
                error = classify_provider_error(exc, self._ctx.model)
                usage = self._error_usage(exc, estimate)
                try:
                    await self._failed_attempt(
                        attempt, error, usage, number=number, started=started
                    )
                except SwitchboardError as final:  # not retried
                    raise final from exc
                continue
            usage = token_usage(
                response.usage,
                input_estimate=estimate.input_tokens,
                output_estimate=estimate_response(response),
            )
            await self._settle(
                attempt,
                "complete",
                usage,
                response_id=response.provider_response_id,
                response=response,
            )
            return response

    async def _read_ahead(self, stream: StreamedResponse) -> bool:
        """Read events until the first one a client would be handed (all of them when the run
        is buffered), then put them back in front of the rest. True if the stream ended."""
        iterator = aiter(stream)
        events: list[ModelResponseStreamEvent] = []
        ended = False
        while True:
            try:
                event = await anext(iterator)
            except StopAsyncIteration:
                ended = True
                break
            events.append(event)
            if not self._traffic.buffered and visible(event):
                break
        stream._event_iterator = replay(events, None if ended else iterator)
        return ended

    async def _close(
        self,
        opened: AbstractAsyncContextManager[StreamedResponse],
        attempt: _Attempt,
        stream: StreamedResponse,
        estimate: Estimate,
        exc: BaseException | None,
    ) -> None:
        """Close a provider stream before its attempt is settled. If closing fails or is
        cancelled, the attempt is settled here (its slot and reservation released) and the
        failure raised: no path leaves an attempt unsettled."""
        try:
            if exc is None:
                await opened.__aexit__(None, None, None)
            else:
                await opened.__aexit__(type(exc), exc, exc.__traceback__)
        except BaseException as failure:
            usage = self._stream_usage(stream, estimate, final=False)
            if not isinstance(failure, Exception):
                await self._settle(attempt, "cancelled", usage)
                raise
            error = classify_provider_error(failure, self._ctx.model)
            await self._settle(attempt, "error", usage, error=error)
            raise error from failure

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
        while True:  # retried only until something is handed on
            number += 1
            attempt = await self._admit(messages, estimate)
            opened = self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            )
            try:
                stream = await opened.__aenter__()
            except asyncio.CancelledError:
                unknown = TokenUsage(input_tokens=estimate.input_tokens, source="estimated")
                await self._settle(attempt, "cancelled", unknown)
                raise
            except Exception as exc:
                error = classify_provider_error(exc, self._ctx.model)
                try:
                    await self._failed_attempt(
                        attempt,
                        error,
                        self._error_usage(exc, estimate),
                        number=number,
                        started=started,
                    )
                except SwitchboardError as final:
                    raise final from exc
                continue
            try:
                ended = await self._read_ahead(stream)
            except BaseException as exc:
                await self._close(opened, attempt, stream, estimate, exc)
                usage = self._stream_usage(stream, estimate, final=False)
                if not isinstance(exc, Exception):
                    await self._settle(attempt, "cancelled", usage)
                    raise
                error = classify_provider_error(exc, self._ctx.model)
                try:
                    await self._failed_attempt(
                        attempt, error, usage, number=number, started=started
                    )
                except SwitchboardError as final:  # not retried
                    raise final from exc
                continue
            if ended and cut(stream):
                await self._close(opened, attempt, stream, estimate, None)
                usage = self._stream_usage(stream, estimate, final=False)
                await self._failed_attempt(
                    attempt, self._stream_cut(), usage, number=number, started=started
                )
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
            await self._settle(
                attempt, "cancelled", self._stream_usage(stream, estimate, final=False)
            )
            raise
        except Exception as exc:
            error = classify_provider_error(exc, self._ctx.model)
            usage = self._stream_usage(stream, estimate, final=False)
            await self._settle(attempt, "error", usage, error=error)
            raise error from exc
        response = stream.get()
        if response.state != "complete" or cut(stream):
            # Cut (after something was handed on), or the consumer stopped early.
            was_cut = response.state == "complete"
            stream_cut = self._stream_cut() if was_cut else None
            usage = self._stream_usage(stream, estimate, final=False)
            await self._settle(
                attempt, "error" if was_cut else "cancelled", usage, error=stream_cut
            )
            if stream_cut is not None:
                raise stream_cut
            return
        await self._settle(
            attempt,
            "complete",
            self._stream_usage(stream, estimate, final=True),
            response_id=stream.provider_response_id,
            response=response,
        )
