"""The one admission order of every provider call (chat steps, runs, summaries, discussions):

1. concurrency slot(s), then rate limits — ``Limiter.admit``;
2. budget reservation + write-ahead ``pending`` ledger row, both or neither — ``LedgerService.open``
   (a caller cancelled meanwhile leaves neither behind);
3. the call — the body of ``async with CallAdmission.admitted(...)``;
4. settlement of the row and the reservation — ``LedgerService.finish``, shielded from
   cancellation: ``complete`` only if the body recorded it, ``error`` if the body raised (the
   error in its class), else ``cancelled``;
5. release of the slot, in a ``finally``.

``CallAdmission.retrying`` repeats 1–5 for transient provider errors only (``RETRYABLE``), with
backoff and full jitter (``RetryPolicy``): each attempt its own slot, reservation and row.
Admission refusals (``ProviderBusy``, ``BudgetExceeded``, ``BudgetBusy``,
``LimiterUnavailable``) are not in ``RETRYABLE``: they end the call at once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from switchboard.errors import (
    BudgetExceeded,
    ProviderRateLimited,
    ProviderStreamCut,
    ProviderTimeout,
    ProviderUnavailable,
    SwitchboardError,
)
from switchboard.ledger.estimate import worst_case_input
from switchboard.ledger.service import CallContext, TokenUsage
from switchboard.metrics import Metrics
from switchboard.money import Cost, price_of
from switchboard.retry import RetryPolicy
from switchboard.runtime.provider_errors import classify_provider_error, http_status_of
from switchboard.telemetry import call_opened, call_settled
from switchboard.traffic.budgets import Reservation
from switchboard.traffic.limiter import Limiter
from switchboard.traffic.limits import Admission

RETRYABLE = (ProviderRateLimited, ProviderUnavailable, ProviderTimeout, ProviderStreamCut)
DEFAULT_BUDGET_WAIT_S = 30.0  # for models without a provider queue (the offline demo)
Status = Literal["complete", "error", "cancelled"]
T = TypeVar("T")
log = logging.getLogger("switchboard.provider")
OnRetry = Callable[[SwitchboardError, int, float], None]
Measure = Callable[[BaseException | None], TokenUsage]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One settled attempt, as its ledger row says: a run reports one per row."""

    row_id: uuid.UUID
    usage: TokenUsage
    cost: Cost
    status: Status
    error_code: str | None = None  # as the row's: the error's code, "CANCELLED" if cancelled


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int  # for tpm: the typical input + max_tokens
    input_tokens: int  # the typical input (ledger/estimate.py): the pending row's estimate
    hold_nano_usd: int  # the worst case: input with a margin + max_tokens at the output price


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


class Ledger(Protocol):
    """What admission needs of the ledger (``LedgerService``)."""

    async def open(
        self,
        ctx: CallContext,
        *,
        request_body: object | None = None,
        budget_hold_nano_usd: int = 0,
        estimated_input_tokens: int = 0,
        budget_wait_s: float = 30.0,
    ) -> tuple[uuid.UUID, Reservation | None]: ...

    async def finish(
        self,
        ctx: CallContext,
        row_id: uuid.UUID,
        *,
        status: Status,
        usage: TokenUsage,
        latency_ms: int,
        provider_response_id: str | None = None,
        error: SwitchboardError | None = None,
        response_body: object | None = None,
        reservation: Reservation | None = None,
    ) -> Cost: ...


@dataclass(slots=True)
class Attempt:
    """One admitted attempt. The body records a complete call with :meth:`complete`; any other
    way out settles it as ``error`` or ``cancelled`` with the usage ``measure`` gives for how it
    ended (the exception, or ``None``), read at settlement time."""

    row_id: uuid.UUID
    reservation: Reservation | None
    measure: Measure
    started: float = field(default_factory=time.monotonic)
    usage: TokenUsage | None = None  # set by complete()
    response_id: str | None = None
    response_body: object | None = None

    def complete(
        self,
        usage: TokenUsage,
        *,
        response_id: str | None = None,
        response_body: object | None = None,
    ) -> None:
        """The provider said the call is complete, with this usage."""
        self.usage = usage
        self.response_id = response_id
        self.response_body = response_body


@dataclass(frozen=True, slots=True)
class CallAdmission:
    """The admission of one model's provider calls, billed to ``ctx``."""

    ledger: Ledger
    ctx: CallContext
    traffic: Traffic
    on_call: Callable[[CallRecord], None]
    on_retry: OnRetry | None = None
    on_open: Callable[[uuid.UUID], None] | None = None  # a pending row: on_call will follow

    def estimate(self, typical_input_tokens: int) -> Estimate:
        """The call's estimate: typical input for tpm and the pending row, the worst case (input
        with a margin, ``max_tokens`` out) for the budget hold."""
        max_tokens = self.traffic.max_tokens
        worst = price_of(
            model=self.ctx.model,
            provider=self.ctx.provider,
            input_tokens=worst_case_input(typical_input_tokens),
            output_tokens=max_tokens,
            cached_tokens=0,
            overrides=self.ctx.prices,
        )
        return Estimate(
            tokens=typical_input_tokens + max_tokens,
            input_tokens=typical_input_tokens,
            hold_nano_usd=worst.nano_usd,
        )

    @asynccontextmanager
    async def admitted(
        self, estimate: Estimate, *, request_body: object | None = None
    ) -> AsyncIterator[Attempt]:
        """Steps 1–5 of the module docstring around the body. An exception leaving the body is
        raised in its class (``classify_provider_error``), after the settlement."""
        metrics = self.traffic.metrics
        slot = self.traffic.limiter.admit(self.traffic.admission, tokens=estimate.tokens)
        queued = time.monotonic()
        await slot.__aenter__()
        try:
            if metrics is not None:
                metrics.admitted(self.ctx.provider, time.monotonic() - queued)
            try:
                row_id, reservation = await self.ledger.open(
                    self.ctx,
                    request_body=request_body,
                    budget_hold_nano_usd=estimate.hold_nano_usd,
                    estimated_input_tokens=estimate.input_tokens,
                    budget_wait_s=self._budget_wait_s(),
                )
            except BudgetExceeded:
                if metrics is not None:
                    metrics.budget_refused()
                raise
            call_opened(row_id)  # on the call's span, when traces are on
            if self.on_open is not None:
                self.on_open(row_id)
            attempt = Attempt(row_id, reservation, measure=lambda exc: unknown_usage(exc, estimate))
            try:
                yield attempt
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled, or the consumer went away
                    await self._settle(attempt, "cancelled", attempt.measure(exc))
                    raise
                error = classify_provider_error(exc, self.ctx.model, row_id=attempt.row_id)
                await self._settle(attempt, "error", attempt.measure(exc), error=error)
                if error is exc:
                    raise
                raise error from exc
            if attempt.usage is None:  # ended without the provider's word: stopped early
                await self._settle(attempt, "cancelled", attempt.measure(None))
            else:
                await self._settle(attempt, "complete", attempt.usage)
        finally:
            await slot.__aexit__(None, None, None)

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` (one ``admitted`` attempt) until it succeeds, raises an error that is not
        transient, or the retry policy gives up (attempts, total time)."""
        started = time.monotonic()
        number = 0
        while True:
            number += 1
            try:
                return await call()
            except RETRYABLE as error:
                delay = self.traffic.retry.delay(
                    error, attempt=number, elapsed_s=time.monotonic() - started
                )
                if delay is None:
                    raise
                if self.traffic.metrics is not None:
                    self.traffic.metrics.retried(error)
                log.info(
                    "provider call to model '%s' failed with %s (attempt %d); retrying in %.2f s",
                    self.ctx.model,
                    error.code,
                    number,
                    delay,
                )
                if self.on_retry is not None:
                    self.on_retry(error, number, delay)
                await asyncio.sleep(delay)

    def _budget_wait_s(self) -> float:
        admission = self.traffic.admission
        return admission.queue_timeout_s if admission.specs else DEFAULT_BUDGET_WAIT_S

    async def _settle(
        self,
        attempt: Attempt,
        status: Status,
        usage: TokenUsage,
        *,
        error: SwitchboardError | None = None,
    ) -> None:
        code = error.code if error else ("CANCELLED" if status == "cancelled" else None)
        try:
            cost = await self.ledger.finish(
                self.ctx,
                attempt.row_id,
                status=status,
                usage=usage,
                latency_ms=int((time.monotonic() - attempt.started) * 1000),
                provider_response_id=attempt.response_id,
                error=error,
                reservation=attempt.reservation,
                response_body=attempt.response_body,
            )
        except asyncio.CancelledError:
            # Cancelled while waiting: the settlement itself goes on (shielded) and stores
            # exactly this price, so the call is still reported to its run.
            price = price_of(
                model=self.ctx.model,
                provider=self.ctx.provider,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                overrides=self.ctx.prices,
            )
            self._report(CallRecord(attempt.row_id, usage, price, status, code))
            raise
        self._report(CallRecord(attempt.row_id, usage, cost, status, code))

    def _report(self, record: CallRecord) -> None:
        call_settled(
            record.row_id,
            status=record.status,
            cost_nano_usd=record.cost.nano_usd,
            error_code=record.error_code,
        )
        self.on_call(record)


def unknown_usage(exc: BaseException | None, estimate: Estimate) -> TokenUsage:
    """Usage of a call that ended without the provider's numbers. An HTTP error status is the
    provider's word that nothing was billed; after a timeout, a lost connection or a
    cancellation the prompt may have been processed: the estimated input."""
    if exc is not None and http_status_of(exc) is not None:
        return TokenUsage()
    return TokenUsage(input_tokens=estimate.input_tokens, source="estimated")
