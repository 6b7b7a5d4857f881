"""The turn a run executes: the agent on the gateway's model, its events mapped for clients, its
new messages handed back for the run's last unit of work. No unit of work is held while a
provider call, a tool or a client is awaited; this module writes only summaries (and, through
the ledgered model, the ledger)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic_ai import Agent, CancellationToken, UsageLimits, capture_run_messages
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    RetryPromptPart,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.run import AgentRunResultEvent

from switchboard.cache import Cache
from switchboard.config.schema import EffectiveConfig
from switchboard.conversations.schemas import NewMessage, StoredMessage
from switchboard.conversations.service import ConversationService
from switchboard.db.uow import AccountScope, UnitOfWorkFactory
from switchboard.directory.service import DirectoryService
from switchboard.errors import Conflict
from switchboard.memories.service import MemoryService
from switchboard.registry.service import AgentService
from switchboard.runtime.admission import OnRetry
from switchboard.runtime.events import ChatEvent, Delta, Done, ToolCalled, ToolReturned
from switchboard.runtime.gateway import Gateway
from switchboard.runtime.ledgered import CallRecord, LedgeredModel
from switchboard.runtime.models import BuiltModel
from switchboard.runtime.prompts import SUMMARY_INSTRUCTIONS, summary_prompt
from switchboard.runtime.tools.context import ToolContext
from switchboard.runtime.tools.registry import build_tools, resolve
from switchboard.telemetry import DISABLED, Telemetry

MAX_MODEL_REQUESTS = 12
AGENT_CACHE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """An agent checked and its model and tools built — before anything is written."""

    scope: AccountScope
    agent_id: uuid.UUID
    agent_slug: str
    config: EffectiveConfig
    built: BuiltModel
    agent: Agent[ToolContext, str]  # shared per tool set; holds no run state


@dataclass(slots=True)
class PreparedTurn:
    """Everything a turn needs once its run has started, and nothing holding a session."""

    plan: TurnPlan
    run_id: uuid.UUID
    conversation_id: uuid.UUID
    history: list[StoredMessage]
    to_summarize: list[StoredMessage]
    summary: str | None
    message: str
    settings: dict[str, Any] = field(default_factory=dict)  # a client's allowed overrides
    streaming: bool = True  # a client watches the run live (else a cut stream is retried)
    on_call: Callable[[CallRecord], None] | None = None
    on_retry: OnRetry | None = None  # a transient provider error, retried after a delay
    calls: list[CallRecord] = field(default_factory=list)
    unsettled: set[uuid.UUID] = field(default_factory=set)  # calls opened, not yet settled
    _settled: asyncio.Event = field(default_factory=asyncio.Event)
    # The agent run's messages as they happen (history first): what a stopped run leaves.
    captured: list[ModelMessage] = field(default_factory=list)
    cancel_token: CancellationToken = field(default_factory=CancellationToken)

    @property
    def scope(self) -> AccountScope:
        return self.plan.scope

    @property
    def config(self) -> EffectiveConfig:
        return self.plan.config

    def opened(self, row_id: uuid.UUID) -> None:
        self.unsettled.add(row_id)
        self._settled.clear()

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)
        self.unsettled.discard(call.row_id)
        if not self.unsettled:
            self._settled.set()
        if self.on_call is not None:
            self.on_call(call)

    async def settled(self, timeout_s: float) -> bool:
        """Wait (bounded) until every call this turn opened has been settled and recorded: a
        stopped agent's calls settle in its own task, possibly after the stop reached us."""
        if not self.unsettled:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                while self.unsettled:
                    await self._settled.wait()
        except TimeoutError:
            return False
        return True


def _dump(message: ModelMessage) -> Any:
    return ModelMessagesTypeAdapter.dump_python([message], mode="json")[0]


def _as_stored(message: ModelMessage) -> NewMessage:
    if isinstance(message, ModelResponse):
        calls = [p for p in message.parts if isinstance(p, ToolCallPart)]
        if calls:
            return NewMessage("tool_call", json.dumps([c.tool_name for c in calls]), _dump(message))
        text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
        return NewMessage("assistant", text, _dump(message))
    results = [p for p in message.parts if isinstance(p, ToolReturnPart | RetryPromptPart)]
    if results:
        return NewMessage("tool_result", json.dumps([r.tool_name for r in results]), _dump(message))
    text = " ".join(
        p.content
        for p in message.parts
        if isinstance(p, UserPromptPart) and isinstance(p.content, str)
    )
    return NewMessage("user", text, _dump(message))


def user_message(text: str) -> NewMessage:
    return _as_stored(ModelRequest(parts=[UserPromptPart(content=text)]))


def assistant_message(text: str) -> NewMessage:
    """A reply a client's own copy of the history holds (OpenAI-style clients send it)."""
    return _as_stored(ModelResponse(parts=[TextPart(content=text)]))


STOPPED_TOOL_RESULT = "The run was stopped before this tool returned."


def closed(messages: list[ModelMessage]) -> list[ModelMessage]:
    """The messages of a stopped run made valid history: a response cut off mid-stream is left
    out (truncated text is never a reply; its tool calls never ran), and every tool call left
    without a result gets one saying so."""
    out: list[ModelMessage] = []
    for message in messages:
        if isinstance(message, ModelResponse) and message.state != "complete":
            continue
        if isinstance(message, ModelRequest) and message.state != "complete":
            message = replace(message, state="complete")
        out.append(message)
    answered = {
        part.tool_call_id
        for message in out
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart | RetryPromptPart)
    }
    results = [
        ToolReturnPart(
            tool_name=part.tool_name, content=STOPPED_TOOL_RESULT, tool_call_id=part.tool_call_id
        )
        for message in out
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart) and part.tool_call_id not in answered
    ]
    if results:
        last = out[-1]
        if isinstance(last, ModelRequest) and not any(
            isinstance(p, UserPromptPart) for p in last.parts
        ):
            out[-1] = replace(last, parts=[*last.parts, *results])
        else:
            out.append(ModelRequest(parts=list(results)))
    return out


def new_messages(messages: list[ModelMessage]) -> list[NewMessage]:
    """A run's messages as stored: the user's (stored when the run started) left out."""
    stored = [_as_stored(m) for m in messages]
    if stored and stored[0].role == "user":
        stored = stored[1:]
    return stored


class ChatService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        agents: AgentService,
        conversations: ConversationService,
        gateway: Gateway,
        memories: MemoryService,
        directories: DirectoryService,
        telemetry: Telemetry = DISABLED,
    ) -> None:
        self._uow = uow
        self._agents = agents
        self._conversations = conversations
        self._gateway = gateway
        self._memories = memories
        self._directories = directories
        # Pydantic AI's model and tool spans, when traces are on (nothing otherwise).
        self._capabilities = list(telemetry.capabilities) or None
        # Tool set → Agent: a pure function of the key, so never stale; no TTL, no
        # invalidation, least recently used evicted beyond AGENT_CACHE_SIZE tool sets.
        self._agents_by_tools: Cache[tuple[object, ...], Agent[ToolContext, str]] = Cache(
            AGENT_CACHE_SIZE
        )

    async def plan(self, scope: AccountScope, agent_slug: str) -> TurnPlan:
        """Check everything a client can get wrong about the agent, before anything is
        written: it exists and is enabled, its tools resolve, its model builds."""
        resolved = await self._agents.resolve(scope, agent_slug)
        if not resolved.agent.enabled:
            raise Conflict(f"agent '{agent_slug}' is disabled", code="AGENT_DISABLED")
        config = resolved.config
        return TurnPlan(
            scope=scope,
            agent_id=resolved.agent.id,
            agent_slug=agent_slug,
            config=config,
            built=self._gateway.models.build(config),
            agent=self._agent_for(config),  # a broken tool path fails here, not mid-run
        )

    def _model(self, turn: PreparedTurn, kind: str) -> LedgeredModel:
        return self._gateway.model_for(
            turn.scope,
            turn.config,
            kind=kind,
            run_id=turn.run_id,
            on_call=turn.record,
            on_retry=turn.on_retry,
            on_open=turn.opened,
            agent_id=turn.plan.agent_id,
            agent_slug=turn.plan.agent_slug,
            conversation_id=turn.conversation_id,
            built=turn.plan.built,
            buffered=not turn.streaming,
        )

    async def run(self, turn: PreparedTurn) -> AsyncIterator[ChatEvent]:
        """Text deltas, tool calls and results as they happen, then ``Done`` with the reply and
        the new messages (written by the run's last unit of work, not here)."""
        if turn.to_summarize:
            await self._summarize(turn)
        instructions = turn.config.system_prompt
        if turn.summary:
            instructions += f"\n\nSummary of the earlier conversation:\n{turn.summary}"
        deps = ToolContext(
            uow=self._uow,
            account=turn.scope,
            agent_id=turn.plan.agent_id,
            agent_slug=turn.plan.agent_slug,
            conversation_id=turn.conversation_id,
            run_id=turn.run_id,
            memories=self._memories,
            directories=self._directories,
            directory_schemas=turn.config.directories,
        )
        history: list[ModelMessage] = ModelMessagesTypeAdapter.validate_python(
            [m.data for m in turn.history]
        )
        reply = ""
        produced: list[ModelMessage] = []
        with capture_run_messages() as captured:
            turn.captured = captured
            async for event in self._events(turn, history, deps, instructions):
                if isinstance(event, AgentRunResultEvent):
                    reply = str(event.result.output)
                    produced = event.result.new_messages()
                else:
                    yield event
        yield self._done(turn, reply, new_messages(produced))

    def stopped_messages(self, turn: PreparedTurn) -> list[NewMessage]:
        """What a run stopped midway (cancelled, failed) leaves in its conversation: the
        messages so far, every open tool call closed."""
        produced = turn.captured[len(turn.history) :]
        return new_messages(closed(produced))

    async def _events(
        self,
        turn: PreparedTurn,
        history: list[ModelMessage],
        deps: ToolContext,
        instructions: str,
    ) -> AsyncIterator[ChatEvent | AgentRunResultEvent[str]]:
        async with turn.plan.agent.run_stream_events(
            turn.message,
            message_history=history,
            deps=deps,
            model=self._model(turn, "chat"),
            instructions=instructions,
            model_settings=self._gateway.settings_for(turn.config, turn.settings),
            usage_limits=UsageLimits(request_limit=MAX_MODEL_REQUESTS),
            cancellation_token=turn.cancel_token,
            capabilities=self._capabilities,
        ) as events:
            async for event in events:
                if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                    if event.part.content:
                        yield Delta(event.part.content)
                elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                    if event.delta.content_delta:
                        yield Delta(event.delta.content_delta)
                elif isinstance(event, FunctionToolCallEvent):
                    yield ToolCalled(
                        event.part.tool_call_id, event.part.tool_name, event.part.args_as_dict()
                    )
                elif isinstance(event, FunctionToolResultEvent):
                    part = event.part
                    content = (
                        part.model_response()
                        if isinstance(part, RetryPromptPart)
                        else part.model_response_str()
                    )
                    yield ToolReturned(part.tool_call_id, part.tool_name, content)
                elif isinstance(event, AgentRunResultEvent):
                    yield event

    def _agent_for(self, config: EffectiveConfig) -> Agent[ToolContext, str]:
        """Agents differ only by their tools here (model, instructions and settings are given
        per run), so one Agent per tool set is built once and shared; it holds no run state."""
        key = (  # everything resolve() and build_tools() read, so a hit is what they'd build
            tuple(config.tools),
            tuple(sorted(config.custom_tools.items())),
            tuple(config.tool_modules),  # the allow-list resolve() checks custom tools against
            config.tool_timeout_s,
        )
        agent = self._agents_by_tools.get(key)
        if agent is None:
            functions = resolve(config)
            agent = Agent(
                None,
                deps_type=ToolContext,
                tools=build_tools(functions, timeout_s=config.tool_timeout_s),
            )
            self._agents_by_tools.put(key, agent)
        return agent

    def _done(self, turn: PreparedTurn, reply: str, messages: list[NewMessage]) -> Done:
        return Done(
            conversation_id=turn.conversation_id,
            reply=reply,
            messages=tuple(messages),
            llm_request_ids=[c.row_id for c in turn.calls],
            input_tokens=sum(c.usage.input_tokens for c in turn.calls),
            output_tokens=sum(c.usage.output_tokens for c in turn.calls),
            cost_nano_usd=sum(c.cost.nano_usd for c in turn.calls),
        )

    async def _summarize(self, turn: PreparedTurn) -> None:
        """Fold messages that left the history window into the stored summary (a ledgered call)."""
        lines = [f"{m.role}: {m.content}" for m in turn.to_summarize if m.content]
        if turn.summary:
            lines.insert(0, f"earlier summary: {turn.summary}")
        summarizer: Agent[None, str] = Agent(
            self._model(turn, "summary"),
            instructions=SUMMARY_INSTRUCTIONS,
        )
        result = await summarizer.run(summary_prompt(lines), capabilities=self._capabilities)
        turn.summary = str(result.output)
        await self._conversations.save_summary(
            turn.scope, turn.conversation_id, turn.summary, turn.to_summarize[-1].seq
        )
        turn.to_summarize = []
