"""A chat turn. Three short units of work — begin (conversation + user message + history),
the ledger rows around each provider call, finish (the new messages) — and none held while a
provider call, a tool or the client's stream is awaited."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent, UsageLimits
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
from pydantic_ai.models.openai import OpenAIChatModelSettings
from pydantic_ai.run import AgentRunResultEvent

from switchboard.cache import Cache
from switchboard.config.schema import EffectiveConfig
from switchboard.conversations.schemas import NewMessage, StoredMessage
from switchboard.conversations.service import ConversationRef, ConversationService
from switchboard.db.uow import AccountScope, UnitOfWorkFactory
from switchboard.directory.service import DirectoryService
from switchboard.errors import Conflict
from switchboard.ledger.service import CallContext, LedgerService
from switchboard.memories.service import MemoryService
from switchboard.metrics import Metrics
from switchboard.registry.service import AgentService
from switchboard.retry import RetryPolicy
from switchboard.runtime.events import ChatEvent, Delta, Done, ToolCalled, ToolReturned
from switchboard.runtime.ledgered import CallRecord, LedgeredModel, Traffic
from switchboard.runtime.models import BuiltModel, ModelFactory
from switchboard.runtime.prompts import SUMMARY_INSTRUCTIONS, summary_prompt
from switchboard.runtime.tools.context import ToolContext
from switchboard.runtime.tools.registry import build_tools, resolve
from switchboard.traffic.limiter import Limiter
from switchboard.traffic.limits import admission_for

MAX_MODEL_REQUESTS = 12
AGENT_CACHE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class ChatInput:
    message: str
    conversation: ConversationRef = None
    user: str | None = None


@dataclass(slots=True)
class PreparedTurn:
    """Everything a turn needs after its first unit of work, and nothing holding a session."""

    scope: AccountScope
    agent_id: uuid.UUID
    agent_slug: str
    config: EffectiveConfig
    built: BuiltModel
    agent: Agent[ToolContext, str]  # shared per tool set; holds no run state
    conversation_id: uuid.UUID
    history: list[StoredMessage]
    to_summarize: list[StoredMessage]
    summary: str | None
    message: str
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    calls: list[CallRecord] = field(default_factory=list)
    streaming: bool = True  # a client watches the run live (else a cut stream is retried)


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


class ChatService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        agents: AgentService,
        conversations: ConversationService,
        ledger: LedgerService,
        models: ModelFactory,
        memories: MemoryService,
        directories: DirectoryService,
        limiter: Limiter,
        metrics: Metrics | None = None,
    ) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._uow = uow
        self._agents = agents
        self._conversations = conversations
        self._ledger = ledger
        self._models = models
        self._memories = memories
        self._directories = directories
        # Tool set → Agent: a pure function of the key, so never stale; no TTL, no
        # invalidation, least recently used evicted beyond AGENT_CACHE_SIZE tool sets.
        self._agents_by_tools: Cache[tuple[object, ...], Agent[ToolContext, str]] = Cache(
            AGENT_CACHE_SIZE
        )

    async def prepare(self, scope: AccountScope, agent_slug: str, chat: ChatInput) -> PreparedTurn:
        """Validate everything a client can get wrong, before any stream starts."""
        resolved = await self._agents.resolve(scope, agent_slug)
        if not resolved.agent.enabled:
            raise Conflict(f"agent '{agent_slug}' is disabled", code="AGENT_DISABLED")
        config = resolved.config
        agent = self._agent_for(config)  # a broken tool path fails here, not mid-run
        built = self._models.build(config)
        start = await self._conversations.begin_turn(
            scope,
            agent_id=resolved.agent.id,
            agent_slug=agent_slug,
            ref=chat.conversation,
            user=chat.user,
            message=user_message(chat.message),
            max_messages=config.memory.max_messages,
            summarize=config.memory.summarize,
        )
        return PreparedTurn(
            scope=scope,
            agent_id=resolved.agent.id,
            agent_slug=agent_slug,
            config=config,
            built=built,
            agent=agent,
            conversation_id=start.conversation_id,
            history=start.history,
            to_summarize=start.to_summarize,
            summary=start.summary,
            message=chat.message,
        )

    def model_for(
        self,
        scope: AccountScope,
        config: EffectiveConfig,
        *,
        kind: str,
        run_id: uuid.UUID,
        on_call: Callable[[CallRecord], None],
        agent_id: uuid.UUID | None = None,
        agent_slug: str | None = None,
        conversation_id: uuid.UUID | None = None,
        built: BuiltModel | None = None,
        buffered: bool = False,
    ) -> LedgeredModel:
        """The model of ``config`` behind the one admission path: limits, retries, budget and
        the write-ahead ledger. Every provider call Switchboard makes goes through one."""
        built = built or self._models.build(config)
        retry = config.retry
        traffic = Traffic(
            limiter=self._limiter,
            admission=admission_for(
                config, provider=built.provider, model=built.name, account=str(scope.id)
            ),
            retry=RetryPolicy(
                attempts=retry.attempts,
                base_s=retry.base_s,
                cap_s=retry.cap_s,
                max_total_s=retry.deadline_s,
            ),
            max_tokens=config.model_settings.max_tokens,
            metrics=self._metrics,
            buffered=buffered,
        )
        ctx = CallContext(
            scope=scope,
            run_id=run_id,
            provider=built.provider,
            model=built.name,
            kind=kind,
            agent_id=agent_id,
            agent_slug=agent_slug,
            conversation_id=conversation_id,
            timeout_s=config.request_timeout_s,
            store_bodies=config.ledger.store_bodies,
            prices=config.prices,
        )
        return LedgeredModel(
            built.model, ledger=self._ledger, ctx=ctx, traffic=traffic, on_call=on_call
        )

    def settings_for(self, config: EffectiveConfig) -> OpenAIChatModelSettings:
        settings = OpenAIChatModelSettings(max_tokens=config.model_settings.max_tokens)
        if config.model_settings.temperature is not None:
            settings["temperature"] = config.model_settings.temperature
        if config.model_settings.top_p is not None:
            settings["top_p"] = config.model_settings.top_p
        if self._models.continuous_usage(config):  # ignored by non-OpenAI models
            settings["openai_continuous_usage_stats"] = True
        return settings

    def _model(self, turn: PreparedTurn, kind: str) -> LedgeredModel:
        return self.model_for(
            turn.scope,
            turn.config,
            kind=kind,
            run_id=turn.run_id,
            on_call=turn.calls.append,
            agent_id=turn.agent_id,
            agent_slug=turn.agent_slug,
            conversation_id=turn.conversation_id,
            built=turn.built,
            buffered=not turn.streaming,
        )

    async def run(self, turn: PreparedTurn) -> AsyncIterator[ChatEvent]:
        if turn.to_summarize:
            await self._summarize(turn)
        instructions = turn.config.system_prompt
        if turn.summary:
            instructions += f"\n\nSummary of the earlier conversation:\n{turn.summary}"
        deps = ToolContext(
            uow=self._uow,
            account=turn.scope,
            agent_id=turn.agent_id,
            agent_slug=turn.agent_slug,
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
        new_messages: list[ModelMessage] = []
        async with turn.agent.run_stream_events(
            turn.message,
            message_history=history,
            deps=deps,
            model=self._model(turn, "chat"),
            instructions=instructions,
            model_settings=self.settings_for(turn.config),
            usage_limits=UsageLimits(request_limit=MAX_MODEL_REQUESTS),
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
                    reply = str(event.result.output)
                    new_messages = event.result.new_messages()
        stored = [_as_stored(m) for m in new_messages]
        if stored and stored[0].role == "user":
            stored = stored[1:]  # the user's message was stored when the turn began
        await self._conversations.finish_turn(
            turn.scope, turn.conversation_id, stored, run_id=turn.run_id
        )
        yield self._done(turn, reply)

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

    def _done(self, turn: PreparedTurn, reply: str) -> Done:
        return Done(
            conversation_id=turn.conversation_id,
            reply=reply,
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
        result = await summarizer.run(summary_prompt(lines))
        turn.summary = str(result.output)
        await self._conversations.save_summary(
            turn.scope, turn.conversation_id, turn.summary, turn.to_summarize[-1].seq
        )
        turn.to_summarize = []

    async def complete(self, turn: PreparedTurn) -> Done:
        """Run a turn to the end (the non-streaming API)."""
        turn.streaming = False
        done: Done | None = None
        async for event in self.run(turn):
            if isinstance(event, Done):
                done = event
        assert done is not None
        return done
