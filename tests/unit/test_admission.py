"""The admission order of a provider call — slot → rate limit → budget + pending row → call →
settlement → release — proved with a fake ledger and the real in-process limiter: the slot is
released whatever happens, only transient errors are retried, each attempt with its own row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from pydantic_ai import ModelResponse, TextPart
from pydantic_ai import exceptions as pai
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel

from switchboard.db.uow import AccountScope
from switchboard.errors import (
    BudgetBusy,
    BudgetExceeded,
    DatabaseUnavailable,
    LimiterUnavailable,
    ProviderBusy,
    ProviderUnavailable,
    SwitchboardError,
    UpstreamRejected,
)
from switchboard.ledger.service import CallContext, TokenUsage
from switchboard.metrics import Metrics
from switchboard.money import Cost
from switchboard.retry import RetryPolicy
from switchboard.runtime.admission import (
    RETRYABLE,
    CallAdmission,
    CallRecord,
    Estimate,
    Status,
    Traffic,
)
from switchboard.runtime.ledgered import LedgeredModel
from switchboard.traffic.budgets import Reservation
from switchboard.traffic.limiter import InProcessLimiter
from switchboard.traffic.limits import Admission, LimitSpec

KEY = "fake"
MESSAGES: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart(content="hello there")])]


@dataclass
class Row:
    status: str = "pending"
    usage: TokenUsage | None = None
    error: SwitchboardError | None = None


@dataclass
class FakeLedger:
    """The ledger's two calls, recorded in ``events`` (shared with the limiter)."""

    events: list[str]
    rows: dict[uuid.UUID, Row] = field(default_factory=dict)
    refuse: BaseException | None = None  # raised by open
    finish_fails: BaseException | None = None  # raised by finish
    finish_gate: asyncio.Event | None = None  # finish waits for it (a slow settlement)
    finishing: asyncio.Event = field(default_factory=asyncio.Event)  # set when finish starts

    async def open(
        self,
        ctx: CallContext,
        *,
        request_body: object | None = None,
        budget_hold_nano_usd: int = 0,
        estimated_input_tokens: int = 0,
        budget_wait_s: float = 30.0,
    ) -> tuple[uuid.UUID, Reservation | None]:
        self.events.append("open")
        if self.refuse is not None:
            raise self.refuse
        row_id = uuid.uuid4()
        self.rows[row_id] = Row()
        return row_id, None

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
    ) -> Cost:
        self.events.append(f"finish {status}")
        self.finishing.set()
        if self.finish_gate is not None:
            await self.finish_gate.wait()
        if self.finish_fails is not None:
            raise self.finish_fails
        row = self.rows[row_id]
        assert row.status == "pending", "settled twice"
        row.status, row.usage, row.error = status, usage, error
        return Cost(nano_usd=usage.input_tokens + usage.output_tokens, priced=True)


class RecordingLimiter(InProcessLimiter):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    @asynccontextmanager
    async def admit(self, admission: Admission, *, tokens: int) -> AsyncIterator[None]:
        self.events.append("slot")
        try:
            async with super().admit(admission, tokens=tokens):
                yield
        finally:
            self.events.append("release")


@dataclass
class World:
    events: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    retries: list[tuple[str, int, float]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.ledger = FakeLedger(self.events)
        self.limiter = RecordingLimiter(self.events)

    def traffic(self, *, buffered: bool = False, attempts: int = 3) -> Traffic:
        return Traffic(
            limiter=self.limiter,
            admission=Admission(
                specs=(LimitSpec(KEY, 1, None, None, label=KEY),), queue_timeout_s=1
            ),
            retry=RetryPolicy(attempts=attempts, base_s=0.0, cap_s=0.0, max_total_s=5),
            max_tokens=100,
            metrics=self.metrics,
            buffered=buffered,
        )

    def ctx(self) -> CallContext:
        scope = AccountScope(id=uuid.uuid4(), slug="acct")
        return CallContext(scope=scope, run_id=uuid.uuid4(), provider=KEY, model="m")

    def admission(self) -> CallAdmission:
        return CallAdmission(
            ledger=self.ledger,
            ctx=self.ctx(),
            traffic=self.traffic(),
            on_call=self.calls.append,
            on_retry=self.on_retry,
        )

    def model(self, wrapped: FunctionModel, *, buffered: bool = False) -> LedgeredModel:
        return LedgeredModel(
            wrapped,
            ledger=self.ledger,
            ctx=self.ctx(),
            traffic=self.traffic(buffered=buffered),
            on_call=self.calls.append,
            on_retry=self.on_retry,
        )

    def on_retry(self, error: SwitchboardError, number: int, delay: float) -> None:
        self.events.append("retry")
        self.retries.append((error.code, number, delay))

    def settled(self) -> list[tuple[str, str | None]]:
        return [(c.status, c.error_code) for c in self.calls]


ESTIMATE = Estimate(tokens=110, input_tokens=10, hold_nano_usd=1000)


async def test_the_order_is_slot_row_call_settlement_release() -> None:
    world = World()
    async with world.admission().admitted(ESTIMATE) as attempt:
        world.events.append("call")
        assert world.limiter.in_use(KEY) == 1
        attempt.complete(TokenUsage(input_tokens=7, output_tokens=3), response_id="r1")
    assert world.events == ["slot", "open", "call", "finish complete", "release"]
    [record] = world.calls
    assert (record.status, record.error_code, record.cost.nano_usd) == ("complete", None, 10)
    assert world.limiter.in_use(KEY) == 0


async def test_the_slot_is_released_when_the_settlement_raises() -> None:
    world = World()
    world.ledger.finish_fails = DatabaseUnavailable("the database is gone")
    with pytest.raises(DatabaseUnavailable):
        async with world.admission().admitted(ESTIMATE) as attempt:
            attempt.complete(TokenUsage(input_tokens=7))
    assert world.events[-2:] == ["finish complete", "release"]
    assert world.limiter.in_use(KEY) == 0
    assert world.calls == []  # nothing was settled, nothing reported


@pytest.mark.parametrize("refusal", [BudgetExceeded("no money"), BudgetBusy("in flight")])
async def test_a_refused_reservation_releases_the_slot_before_any_call(
    refusal: SwitchboardError,
) -> None:
    world = World()
    world.ledger.refuse = refusal
    with pytest.raises(type(refusal)):
        async with world.admission().admitted(ESTIMATE):
            pytest.fail("called without a row")
    assert world.events == ["slot", "open", "release"]
    assert world.limiter.in_use(KEY) == 0
    refused = world.metrics.budget_refusals._value.get()
    assert refused == (1 if isinstance(refusal, BudgetExceeded) else 0)


async def test_a_body_error_is_settled_and_raised_in_its_class() -> None:
    world = World()
    http_400 = pai.ModelHTTPError(status_code=400, model_name="m", body={"secret": "x"})
    with pytest.raises(UpstreamRejected) as raised:
        async with world.admission().admitted(ESTIMATE):
            raise http_400
    assert raised.value.__cause__ is http_400
    assert world.settled() == [("error", "PROVIDER_PERMANENT_ERROR")]
    assert world.calls[0].usage == TokenUsage()  # an HTTP status: nothing was billed
    assert world.events[-1] == "release"


async def test_a_cancelled_call_is_settled_cancelled_with_the_estimate() -> None:
    world = World()
    inside = asyncio.Event()

    async def call() -> None:
        async with world.admission().admitted(ESTIMATE):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(call())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.settled() == [("cancelled", "CANCELLED")]
    assert world.calls[0].usage == TokenUsage(input_tokens=10, source="estimated")
    assert world.events[-1] == "release"
    assert world.limiter.in_use(KEY) == 0


async def test_a_call_whose_caller_is_cancelled_during_settlement_is_still_reported() -> None:
    """The ledger's settlement is shielded and goes on; the run must still hear of the call
    (else its result would leave out spend the ledger has)."""
    world = World()
    world.ledger.finish_gate = asyncio.Event()
    settling = asyncio.Event()

    async def call() -> None:
        async with world.admission().admitted(ESTIMATE) as attempt:
            attempt.usage = TokenUsage(input_tokens=7, output_tokens=3)
        settling.set()

    task = asyncio.create_task(call())
    await world.ledger.finishing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not settling.is_set()
    assert [(c.status, c.usage.input_tokens, c.usage.output_tokens) for c in world.calls] == [
        ("complete", 7, 3)
    ]
    assert world.events[-1] == "release"


async def test_leaving_without_the_providers_word_is_cancelled() -> None:
    world = World()
    async with world.admission().admitted(ESTIMATE):
        pass
    assert world.settled() == [("cancelled", "CANCELLED")]


def test_admission_refusals_are_never_retried() -> None:
    for refusal in (ProviderBusy, BudgetBusy, BudgetExceeded, LimiterUnavailable):
        assert not issubclass(refusal, RETRYABLE)


def _answer(failures: list[BaseException]) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if failures:
            raise failures.pop(0)
        return ModelResponse(parts=[TextPart("hi")])

    return FunctionModel(respond, model_name="m")


async def test_a_transient_error_is_retried_with_a_new_row_per_attempt() -> None:
    world = World()
    model = world.model(_answer([pai.ModelHTTPError(status_code=503, model_name="m")]))
    response = await model.request(MESSAGES, None, ModelRequestParameters())
    assert response.parts == [TextPart("hi")]
    assert world.settled() == [("error", "PROVIDER_UNAVAILABLE"), ("complete", None)]
    assert len({c.row_id for c in world.calls}) == len(world.ledger.rows) == 2
    assert world.retries == [("PROVIDER_UNAVAILABLE", 1, 0.0)]
    # The failed attempt is settled and its slot released before the backoff.
    assert world.events == [
        *["slot", "open", "finish error", "release", "retry"],
        *["slot", "open", "finish complete", "release"],
    ]
    assert world.metrics.provider_retries.labels("transient", "PROVIDER_UNAVAILABLE")._value.get()


async def test_a_permanent_error_is_not_retried() -> None:
    world = World()
    model = world.model(_answer([pai.ModelHTTPError(status_code=400, model_name="m")]))
    with pytest.raises(UpstreamRejected):
        await model.request(MESSAGES, None, ModelRequestParameters())
    assert world.settled() == [("error", "PROVIDER_PERMANENT_ERROR")]
    assert world.retries == []


async def test_retries_stop_after_the_policys_attempts() -> None:
    world = World()
    unavailable: list[BaseException] = [
        pai.ModelHTTPError(status_code=503, model_name="m") for _ in range(5)
    ]
    model = world.model(_answer(unavailable))
    with pytest.raises(ProviderUnavailable):
        await model.request(MESSAGES, None, ModelRequestParameters())
    assert [n for _, n, _ in world.retries] == [1, 2]
    assert world.settled() == [("error", "PROVIDER_UNAVAILABLE")] * 3
    assert world.limiter.in_use(KEY) == 0


def _stream(script: list[list[str | BaseException]]) -> FunctionModel:
    """Each call streams its list: text chunks, then maybe an error."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for item in script.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item

    return FunctionModel(stream_function=stream, model_name="m")


async def _consume(model: LedgeredModel) -> str:
    async with model.request_stream(MESSAGES, None, ModelRequestParameters()) as stream:
        async for _ in stream:
            pass
        return "".join(p.content for p in stream.get().parts if isinstance(p, TextPart))


async def test_a_stream_failing_before_anything_was_handed_on_is_retried() -> None:
    world = World()
    unavailable = pai.ModelHTTPError(status_code=503, model_name="m")
    model = world.model(_stream([["Hel", unavailable], ["Hello", " world"]]), buffered=True)
    assert await _consume(model) == "Hello world"
    assert world.settled() == [("error", "PROVIDER_UNAVAILABLE"), ("complete", None)]
    assert world.calls[0].usage.source in ("partial", "estimated")
    assert world.calls[0].usage.input_tokens > 0  # never silently zero
    assert [n for _, n, _ in world.retries] == [1]


async def test_a_stream_failing_after_text_was_handed_on_is_not_retried() -> None:
    world = World()
    unavailable = pai.ModelHTTPError(status_code=503, model_name="m")
    model = world.model(_stream([["Hel", "lo", unavailable], ["never"]]))
    with pytest.raises(ProviderUnavailable):
        await _consume(model)
    assert world.settled() == [("error", "PROVIDER_UNAVAILABLE")]
    assert world.retries == []
    assert world.events[-1] == "release"


async def test_a_consumer_that_stops_early_settles_the_stream_cancelled() -> None:
    world = World()
    model = world.model(_stream([["Hel", "lo", " world"]]))
    async with model.request_stream(MESSAGES, None, ModelRequestParameters()) as stream:
        async for _ in stream:
            break
    assert world.settled() == [("cancelled", "CANCELLED")]
    assert world.limiter.in_use(KEY) == 0
