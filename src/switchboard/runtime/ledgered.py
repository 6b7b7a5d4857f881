"""The model every provider call goes through: each request or stream is one call of
:mod:`switchboard.runtime.admission` (slot → rate limit → budget reservation + write-ahead
ledger row → call → settlement → release), retried there on transient errors, each attempt
with its own slot, reservation and ledger row.

A stream is complete only when the provider says so (its finish reason): one that ends without
it raises ``PROVIDER_STREAM_CUT``. Events are read ahead until the first one a client could see
(text), or — for a run nobody watches live — to the end, so a stream cut before anything was
handed on is retried like any transient error; after that, the run ends with the error and the
truncated text is never a finished reply. The provider's stream is always closed before its
attempt is settled, and no way out of an attempt leaves it unsettled. Tokens the provider never
reported are estimated and marked so (``usage_source``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from pydantic_ai import ModelResponse
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponseStreamEvent
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from switchboard.errors import ProviderStreamCut
from switchboard.ledger.service import CallContext, TokenUsage
from switchboard.runtime.admission import (
    DEFAULT_BUDGET_WAIT_S,
    RETRYABLE,
    CallAdmission,
    CallRecord,
    Estimate,
    Ledger,
    OnRetry,
    Traffic,
)
from switchboard.runtime.estimate import estimate_request, estimate_response
from switchboard.runtime.provider_errors import classify_provider_error
from switchboard.runtime.streams import cut, replay, token_usage, visible

__all__ = [
    "DEFAULT_BUDGET_WAIT_S",
    "RETRYABLE",
    "CallRecord",
    "LedgeredModel",
    "Traffic",
    "classify_provider_error",
    "token_usage",
]


class LedgeredModel(WrapperModel):
    def __init__(
        self,
        wrapped: Any,
        *,
        ledger: Ledger,  # a LedgerService
        ctx: CallContext,
        traffic: Traffic,
        on_call: Callable[[CallRecord], None],
        on_retry: OnRetry | None = None,
        on_open: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._ctx = ctx
        self._traffic = traffic
        self._calls = CallAdmission(
            ledger=ledger,
            ctx=ctx,
            traffic=traffic,
            on_call=on_call,
            on_retry=on_retry,
            on_open=on_open,
        )

    def _estimate(
        self, messages: list[ModelMessage], parameters: ModelRequestParameters
    ) -> Estimate:
        return self._calls.estimate(estimate_request(messages, parameters))

    def _body(self, messages: list[ModelMessage]) -> Any | None:
        if not self._ctx.store_bodies:
            return None
        return ModelMessagesTypeAdapter.dump_python(messages, mode="json")

    def _stream_usage(
        self, stream: StreamedResponse, estimate: Estimate, *, final: bool
    ) -> TokenUsage:
        return token_usage(
            stream.usage,
            final=final,
            input_estimate=estimate.input_tokens,
            output_estimate=estimate_response(stream.get()),
        )

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

        async def attempt() -> ModelResponse:
            async with self._calls.admitted(estimate, request_body=self._body(messages)) as call:
                response = await self.wrapped.request(
                    messages, model_settings, model_request_parameters
                )
                usage = token_usage(
                    response.usage,
                    input_estimate=estimate.input_tokens,
                    output_estimate=estimate_response(response),
                )
                call.complete(
                    usage,
                    response_id=response.provider_response_id,
                    response_body=self._body([response]),
                )
            return response

        return await self._calls.retrying(attempt)

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

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        estimate = self._estimate(messages, model_request_parameters)
        async with AsyncExitStack() as stack:
            # Retried only until something is handed on: an attempt that has yielded its stream
            # stays open on the stack until the consumer is done with it.
            yield await self._calls.retrying(
                lambda: stack.enter_async_context(
                    self._stream_attempt(
                        estimate, messages, model_settings, model_request_parameters, run_context
                    )
                )
            )

    @asynccontextmanager
    async def _stream_attempt(
        self,
        estimate: Estimate,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None,
    ) -> AsyncIterator[StreamedResponse]:
        """One admitted attempt: the provider's stream, read ahead, handed on unless it was cut
        first; closed before the attempt is settled."""
        async with self._calls.admitted(estimate, request_body=self._body(messages)) as call:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                call.measure = lambda _: self._stream_usage(stream, estimate, final=False)
                cut_early = await self._read_ahead(stream) and cut(stream)
                if not cut_early:
                    yield stream
            if cut_early:
                raise self._stream_cut()  # nothing was handed on: retried
            response = stream.get()
            if response.state != "complete":
                return  # the consumer stopped early: settled as cancelled
            if cut(stream):
                raise self._stream_cut()  # after something was handed on: the run ends
            call.complete(
                self._stream_usage(stream, estimate, final=True),
                response_id=stream.provider_response_id,
                response_body=self._body([response]),
            )
