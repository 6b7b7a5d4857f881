"""Runs executed by this process. ``submit`` checks the agent, creates the run (one unit of
work: idempotent, queued behind the conversation's active run, started at once when nothing is
ahead) and executes it in a task of its own, so a client that goes away does not take the run
with it. The pipeline of one run:

    wait for its turn (pending → running)      one unit of work per try
    the turn: the agent on the gateway's model  ledger rows around each provider call
    events stored as they come (coalesced)      one unit of work per flush, only while watched
    finish: status, result, messages, events   one unit of work, conditional on ``running``

A run asked to stop (cancel, a later run's interrupt or rollback, shutdown) is cancelled in its
task: the ledger settles its calls as cancelled and the finish stores the messages so far with
every open tool call closed. Stop requests made by other processes — and a run another process
swept because this one's lease lapsed — are picked up by a watcher that polls this process's
running runs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry.trace import Span
from pydantic_ai import CancellationToken
from pydantic_ai.exceptions import RunCancelled

from switchboard import logs, telemetry
from switchboard.conversations.schemas import NewMessage
from switchboard.conversations.service import ConversationRef, TurnStart
from switchboard.db.uow import AccountScope
from switchboard.errors import SwitchboardError, TransientError, error_for_code
from switchboard.ledger.leases import OwnerLease
from switchboard.money import nano_to_usd_str
from switchboard.periodic import every
from switchboard.runs.schemas import TERMINAL_STATUSES, EventData, EventView, RunView
from switchboard.runs.service import NewRun, RunService
from switchboard.runtime.chat import ChatService, PreparedTurn, TurnPlan, user_message
from switchboard.runtime.events import Delta, Done, ToolCalled, ToolReturned
from switchboard.runtime.gate import RunGate
from switchboard.runtime.ledgered import CallRecord
from switchboard.telemetry import DISABLED, Telemetry

log = logging.getLogger("switchboard.runs")

LIVE_FLUSH_S = 0.2  # how long text deltas wait to be stored while someone watches the run
QUIET_FLUSH_S = 1.0  # … while nobody does (followers in other processes still see progress)
WATCH_POLL_S = 0.25  # how often a run checks whether someone started watching it
SETTLE_WAIT_S = 30.0  # how long a stopped run waits for its calls' settlements
Phase = Literal["waiting", "turn", "finishing"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    message: str
    conversation: ConversationRef = None
    user: str | None = None
    strategy: str = "enqueue"
    on_disconnect: str = "continue"
    background: bool = False
    # An OpenAI-style client's own copy of the history, before ``message`` (see open_in).
    client: tuple[NewMessage, ...] | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # model settings the agent lets a client set
    after_run: uuid.UUID | None = None  # continue from this run's turn (Responses' previous)

    def fingerprint(self, agent_slug: str) -> str:
        """What makes two requests the same run (``stream`` is only how it is delivered)."""
        body: dict[str, Any] = {
            "agent": agent_slug,
            "message": self.message,
            "conversation_id": None if self.conversation is None else str(self.conversation),
            "user": self.user,
            "multitask_strategy": self.strategy,
            "on_disconnect": self.on_disconnect,
            "background": self.background,
        }
        if self.client is not None:
            body["client"] = [[m.role, m.content] for m in self.client]
        if self.settings:
            body["settings"] = dict(self.settings)
        if self.after_run is not None:
            body["after_run"] = str(self.after_run)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run executed here ended: its final row, and the error that failed it."""

    run: RunView
    done: Done | None = None
    error: SwitchboardError | None = None


@dataclass(slots=True)
class LocalRun:
    run: RunView
    scope: AccountScope
    task: asyncio.Task[None] | None = None
    phase: Phase = "waiting"
    stop_reason: str | None = None
    cancelling: bool = False
    token: CancellationToken | None = None
    outcome: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def stop(self, reason: str) -> None:
        """Stop the run at its next await (while waiting or during its turn; a run already
        finishing finishes)."""
        if self.stop_reason is None or reason == "rollback":
            self.stop_reason = reason
        if self.phase == "turn" and self.token is not None:
            # Pydantic AI's own cancellation: the agent's background task stops, its provider
            # calls are settled as cancelled, and the run raises RunCancelled.
            self.token.cancel()
        elif self.task is not None and self.phase == "waiting" and not self.cancelling:
            # Once: a second cancel would cut short the settlements the first one started.
            self.cancelling = True
            self.task.cancel()


@dataclass(frozen=True, slots=True)
class Submitted:
    run: RunView
    replayed: bool
    local: LocalRun | None  # set when this process executes the run
    forked_from: uuid.UUID | None = None  # the client's history diverged from this one


class EventHub:
    """Wakes whoever follows a run in this process when its events were stored (followers in
    other processes poll)."""

    def __init__(self) -> None:
        self._changed: dict[uuid.UUID, asyncio.Event] = {}
        self._listeners: dict[uuid.UUID, int] = {}

    def changed(self, key: uuid.UUID) -> asyncio.Event:
        """Take this before reading, then wait on it: no wake-up is lost in between."""
        found = self._changed.get(key)
        if found is None:
            found = self._changed[key] = asyncio.Event()
        return found

    def notify(self, key: uuid.UUID) -> None:
        found = self._changed.pop(key, None)
        if found is not None:
            found.set()

    def watched(self, key: uuid.UUID) -> bool:
        return self._listeners.get(key, 0) > 0

    @contextlib.contextmanager
    def listening(self, key: uuid.UUID) -> Any:
        self._listeners[key] = self._listeners.get(key, 0) + 1
        try:
            yield
        finally:
            left = self._listeners[key] - 1
            if left:
                self._listeners[key] = left
            else:
                del self._listeners[key]


def _call_event(call: CallRecord) -> EventData:
    return (
        "provider_call",
        {
            "llm_request_id": str(call.row_id),
            "status": call.status,
            "error_code": call.error_code,
            "input_tokens": call.usage.input_tokens,
            "output_tokens": call.usage.output_tokens,
            "cached_tokens": call.usage.cached_tokens,
            "usage_source": call.usage.source,
            "cost_usd": nano_to_usd_str(call.cost.nano_usd),
        },
    )


def _result(calls: list[CallRecord], reply: str) -> dict[str, Any]:
    return {
        "reply": reply,
        "llm_request_ids": [str(c.row_id) for c in calls],
        "usage": {
            "input_tokens": sum(c.usage.input_tokens for c in calls),
            "output_tokens": sum(c.usage.output_tokens for c in calls),
            "cached_tokens": sum(c.usage.cached_tokens for c in calls),
        },
        "cost_usd": nano_to_usd_str(sum(c.cost.nano_usd for c in calls)),
    }


def _trace_end(span: Span, run: RunView) -> None:
    """How the run ended, on its span: status and its calls' totals as its result has them."""
    result = run.result if isinstance(run.result, dict) else {}
    usage = result.get("usage") or {}
    telemetry.run_ended(
        span,
        status=run.status,
        error_code=run.error_code,
        ledger_ids=[str(i) for i in result.get("llm_request_ids", [])],
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
        cost_usd=str(result.get("cost_usd", nano_to_usd_str(0))),
    )


class _Events:
    """A run's events on their way to the database: text deltas coalesced, stored in order,
    followers woken once they are committed."""

    def __init__(self, manager: RunManager, scope: AccountScope, run_id: uuid.UUID) -> None:
        self._manager = manager
        self._scope = scope
        self._run_id = run_id
        self.pending: list[EventData] = []
        self._flushed = time.monotonic()
        self.lock = asyncio.Lock()  # batches are stored in the order they were taken
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Store what is pending on a timer too: a follower that attaches while the run waits
        on a long tool call sees what happened before it."""
        self._flusher = asyncio.create_task(self._flush_periodically(), name="run-events")

    async def stop(self) -> None:
        """Stop the timer (after any flush in progress); what is pending stays for the finish."""
        if self._flusher is None:
            return
        async with self.lock:
            self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        self._flusher = None

    async def _flush_periodically(self) -> None:
        while True:
            watched = self._manager.hub.watched(self._run_id)
            await asyncio.sleep(LIVE_FLUSH_S if watched else WATCH_POLL_S)
            try:
                await self.tick(urgent=False)
            except Exception as exc:  # the run's own flushes and finish report failures
                log.warning("storing events of run %s failed: %s", self._run_id, exc)

    def push(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "delta" and self.pending and self.pending[-1][0] == "delta":
            self.pending[-1] = ("delta", {"text": self.pending[-1][1]["text"] + data["text"]})
        else:
            self.pending.append((kind, data))

    async def tick(self, urgent: bool) -> None:
        """Store what is pending if someone watches (at once for tool events, every
        LIVE_FLUSH_S for text) or, when nobody does, every QUIET_FLUSH_S."""
        if not self.pending:
            return
        watched = self._manager.hub.watched(self._run_id)
        wait = (0.0 if urgent else LIVE_FLUSH_S) if watched else QUIET_FLUSH_S
        if time.monotonic() - self._flushed >= wait:
            async with self.lock:
                await self._flush()

    async def _flush(self) -> None:
        if not self.pending:
            return
        events, self.pending = self.pending, []
        self._flushed = time.monotonic()
        stored = await self._manager.runs.append_events(self._scope, self._run_id, events)
        if stored is None:
            raise RunLost(f"run '{self._run_id}' is no longer running (swept)")
        self._manager.hub.notify(self._run_id)


class RunLost(TransientError):
    """The run's row left ``running`` under it (its owner's lease expired and it was swept)."""

    default_code = "RUN_LOST"


class RunManager:
    def __init__(
        self,
        *,
        runs: RunService,
        chat: ChatService,
        lease: OwnerLease,
        gate: RunGate,
        key_ttl_s: float,
        poll_s: float,
        sweep_interval_s: float,
        telemetry: Telemetry = DISABLED,
    ) -> None:
        self.runs = runs
        self.hub = EventHub()
        self._chat = chat
        self._lease = lease
        self.gate = gate
        self._key_ttl_s = key_ttl_s
        self._poll_s = poll_s
        self._sweep_interval_s = sweep_interval_s
        self._telemetry = telemetry
        self._local: dict[uuid.UUID, LocalRun] = {}
        self._turns = EventHub()  # keyed by conversation: a run there finished
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[RunView]] = set()

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Sweep dead processes' runs now, then keep watching for stop requests and sweeping."""
        await self._sweep()
        self._loops = [
            asyncio.create_task(
                every(self._poll_s, self._watch, what="run watcher", log=log), name="run-watcher"
            ),
            asyncio.create_task(
                every(self._sweep_interval_s, self._sweep, what="run sweep", log=log),
                name="run-sweeper",
            ),
        ]

    async def stop(self) -> None:
        """At shutdown: stop the loops, then every run of this process (each is finished as
        ``interrupted`` with its spend recorded)."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        local = list(self._local.values())
        for run in local:
            run.stop("shutdown")
        await asyncio.gather(*(r.task for r in local if r.task is not None), return_exceptions=True)

    async def _sweep(self) -> None:
        if self._lease.registered:
            await self._lease.renew()
        swept = await self.runs.sweep(alive=self._lease.owner_id)
        if swept:
            log.warning("marked %d runs of dead processes interrupted", swept)
        await self.runs.forget_keys()

    async def _watch(self) -> None:
        running = [r.run.id for r in self._local.values() if r.phase == "turn"]
        if not running:
            return
        for run_id, reason in await self.runs.stop_requested(running):
            local = self._local.get(run_id)
            if local is not None:
                local.stop(reason)

    # --- API ----------------------------------------------------------------------------------
    async def submit(
        self,
        scope: AccountScope,
        agent_slug: str,
        request: RunRequest,
        *,
        idempotency_key: str | None = None,
        streaming: bool = False,
    ) -> Submitted:
        plan = await self._chat.plan(scope, agent_slug)  # refusals before anything is written
        return await self.submit_planned(
            plan, request, idempotency_key=idempotency_key, streaming=streaming
        )

    async def submit_planned(
        self,
        plan: TurnPlan,
        request: RunRequest,
        *,
        idempotency_key: str | None = None,
        streaming: bool = False,
    ) -> Submitted:
        """``submit`` for a caller that needed the agent's plan (its configuration) to shape
        the request."""
        await self.gate.enter()  # 503 SERVER_BUSY when too many runs wait already
        try:
            return await self._create(
                plan.scope, plan.agent_slug, request, plan, idempotency_key, streaming
            )
        except BaseException:
            self.gate.leave()
            raise

    async def _create(
        self,
        scope: AccountScope,
        agent_slug: str,
        request: RunRequest,
        plan: TurnPlan,
        idempotency_key: str | None,
        streaming: bool,
    ) -> Submitted:
        """Create the run and start its task (which leaves the gate when it ends); a replay
        leaves the gate at once."""
        config = plan.config
        created = await self.runs.create(
            scope,
            NewRun(
                agent_id=plan.agent_id,
                agent_slug=agent_slug,
                conversation=request.conversation,
                user=request.user,
                message=user_message(request.message),
                client=request.client,
                after_run=request.after_run,
                strategy=request.strategy,
                on_disconnect=request.on_disconnect,
                background=request.background,
                request={
                    "message": request.message,
                    "conversation_id": (
                        None if request.conversation is None else str(request.conversation)
                    ),
                    "user": request.user,
                },
                fingerprint=request.fingerprint(agent_slug),
                idempotency_key=idempotency_key,
                key_ttl_s=self._key_ttl_s,
                owner_id=await self._lease.ensure(),
                max_messages=config.memory.max_messages,
                summarize=config.memory.summarize,
            ),
        )
        if created.replayed:
            self.gate.leave()
            return Submitted(created.run, True, self._local.get(created.run.id))
        for run_id in created.stopping:  # interrupt / rollback: stop ours at once
            running = self._local.get(run_id)
            if running is not None:
                running.stop(request.strategy)
        local = LocalRun(created.run, scope)
        self._local[created.run.id] = local
        run = created.run
        with logs.bound(  # the task's log lines (its tools' and ledger's too) carry these
            account=scope.slug,
            agent=agent_slug,
            conversation_id=run.conversation_id,
            run_id=run.id,
        ):
            local.task = asyncio.create_task(
                self._execute(
                    local, plan, request, created.start, created.prelude, streaming=streaming
                ),
                name=f"run-{run.id}",
            )
        return Submitted(created.run, False, local, created.forked_from)

    async def cancel(self, scope: AccountScope, run_id: uuid.UUID) -> RunView:
        run = await self.runs.cancel(scope, run_id)
        local = self._local.get(run_id)
        if local is not None and run.status == "running":
            local.stop("cancel")
        self._turns.notify(run.conversation_id)  # a cancelled pending run of ours: let it go
        self.hub.notify(run_id)
        return run

    def disconnected(self, scope: AccountScope, run_id: uuid.UUID) -> None:
        """A client with ``on_disconnect=cancel`` went away: stop the run (safe to call from a
        cancelled task — nothing here is awaited by the caller)."""
        local = self._local.get(run_id)
        if local is not None:
            local.stop("cancel")
            return
        task = asyncio.ensure_future(self.cancel(scope, run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait(self, scope: AccountScope, run_id: uuid.UUID, *, timeout_s: float) -> RunView:
        """The run once it has ended, or as it is after ``timeout_s``."""
        local = self._local.get(run_id)
        if local is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    return (await asyncio.shield(local.outcome)).run
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self.hub.changed(run_id)
            run = await self.runs.get(scope, run_id)
            left = deadline - time.monotonic()
            if run.status in TERMINAL_STATUSES or left <= 0:
                return run
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self._poll_s, left)):
                    await changed.wait()

    async def follow(
        self, scope: AccountScope, run_id: uuid.UUID, *, after: int = 0
    ) -> AsyncIterator[EventView]:
        """The run's events after seq ``after``: the stored ones, then live ones as they are
        stored, ending with the terminal event. Each exactly once, in order."""
        with self.hub.listening(run_id):
            while True:
                changed = self.hub.changed(run_id)
                run, events = await self.runs.events(scope, run_id, after=after)
                for event in events:
                    yield event
                    after = event.seq
                if events and len(events) >= 500:
                    continue  # more to read before waiting
                if run.status in TERMINAL_STATUSES:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):
                        await changed.wait()

    def local(self, run_id: uuid.UUID) -> LocalRun | None:
        return self._local.get(run_id)

    # --- execution ----------------------------------------------------------------------------
    async def _execute(
        self,
        local: LocalRun,
        plan: TurnPlan,
        request: RunRequest,
        start: TurnStart | None,
        prelude: tuple[NewMessage, ...],
        *,
        streaming: bool,
    ) -> None:
        """The run inside its ``invoke_agent`` span (a no-op when traces are off): a child of
        the span of the request that created it, as the task inherits the request's context."""
        run = local.run
        with self._telemetry.run_span(
            agent=plan.agent_slug,
            account=plan.scope.slug,
            run_id=run.id,
            conversation_id=run.conversation_id,
            model=plan.built.name,
            provider=plan.built.provider,
        ) as span:
            try:
                await self._execute_run(local, plan, request, start, prelude, streaming=streaming)
            finally:
                outcome = local.outcome  # set by now: the run's final row
                if (
                    span.is_recording()
                    and outcome.done()
                    and not outcome.cancelled()
                    and outcome.exception() is None
                ):
                    _trace_end(span, outcome.result().run)

    async def _execute_run(
        self,
        local: LocalRun,
        plan: TurnPlan,
        request: RunRequest,
        start: TurnStart | None,
        prelude: tuple[NewMessage, ...],
        *,
        streaming: bool,
    ) -> None:
        run = local.run
        scope = plan.scope
        events = _Events(self, scope, run.id)
        turn: PreparedTurn | None = None
        outcome: Outcome | None = None
        try:
            if start is None:
                start = await self._wait_for_turn(local, plan, request, prelude)
                if start is None:  # cancelled (or swept) while it waited
                    outcome = Outcome(await self.runs.get(scope, run.id))
                    return
            turn = PreparedTurn(
                plan=plan,
                run_id=run.id,
                conversation_id=start.conversation_id,
                history=start.history,
                to_summarize=start.to_summarize,
                summary=start.summary,
                message=request.message,
                settings=dict(request.settings),
                streaming=streaming,
                on_call=lambda call: events.push(*_call_event(call)),
                on_retry=lambda error, attempt, delay: events.push(
                    "retrying",
                    {"code": error.code, "attempt": attempt, "delay_s": round(delay, 3)},
                ),
            )
            local.token = turn.cancel_token
            local.phase = "turn"
            events.start()
            if local.stop_reason is not None:
                raise asyncio.CancelledError
            done = await self._turn(turn, events)
            local.phase = "finishing"
            outcome = await self._finish(
                local,
                turn,
                events,
                status="succeeded",
                messages=list(done.messages),
                terminal=(
                    "done",
                    {
                        "run_id": str(run.id),
                        "conversation_id": str(turn.conversation_id),
                        **_result(turn.calls, done.reply),
                    },
                ),
                result=_result(turn.calls, done.reply),
                done=done,
            )
        except (asyncio.CancelledError, RunCancelled):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
            local.phase = "finishing"
            await self._settled(turn)
            reason = local.stop_reason or "shutdown"
            status = "interrupted" if reason == "shutdown" else "cancelled"
            stopped = (
                {
                    "error_code": "SERVER_SHUTDOWN",
                    "error_class": "transient",
                    "error_message": "the server shut down while the run was active",
                }
                if status == "interrupted"
                else {"stop_reason": reason}
            )
            outcome = await self._finish(
                local,
                turn,
                events,
                status=status,
                messages=self._chat.stopped_messages(turn) if turn else [],
                terminal=(status, {"run_id": str(run.id), "reason": reason}),
                result=_result(turn.calls if turn else [], ""),
                values=stopped,
            )
        except Exception as exc:
            local.phase = "finishing"
            await self._settled(turn)
            if isinstance(exc, SwitchboardError):
                error = exc
                log.warning("run %s failed: %s", run.id, exc)
            else:
                log.exception("run %s failed", run.id)
                error = error_for_code("INTERNAL_ERROR", "internal server error", "fatal")
            outcome = await self._finish(
                local,
                turn,
                events,
                status="failed",
                messages=self._chat.stopped_messages(turn) if turn else [],
                terminal=(
                    "error",
                    {
                        "run_id": str(run.id),
                        "code": error.code,
                        "message": error.message,
                        "retryable": error.retryable,
                        "class": error.kind,
                    },
                ),
                result=_result(turn.calls if turn else [], ""),
                values={
                    "error_code": error.code,
                    "error_class": error.kind,
                    "error_message": error.message,
                },
                error=error,
            )
        finally:
            self.gate.leave()
            self._local.pop(run.id, None)
            if not local.outcome.done():
                if outcome is None:
                    with contextlib.suppress(Exception):
                        outcome = Outcome(await self.runs.get(scope, run.id))
                if outcome is not None:
                    local.outcome.set_result(outcome)
                else:
                    local.outcome.set_exception(RunLost(f"run '{run.id}' ended unrecorded"))
            self.hub.notify(run.id)
            self._turns.notify(run.conversation_id)

    async def _wait_for_turn(
        self,
        local: LocalRun,
        plan: TurnPlan,
        request: RunRequest,
        prelude: tuple[NewMessage, ...],
    ) -> TurnStart | None:
        """Try to start the run until every run queued before it in its conversation has
        ended: woken by runs of this process ending, polling for other processes'."""
        messages = [*prelude, user_message(request.message)]
        while True:
            ended = self._turns.changed(local.run.conversation_id)
            state, start, local.run = await self.runs.start(
                plan.scope,
                local.run,
                messages=messages,
                max_messages=plan.config.memory.max_messages,
                summarize=plan.config.memory.summarize,
            )
            if state == "started":
                self.hub.notify(local.run.id)
                return start
            if state == "gone":
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await ended.wait()

    async def _settled(self, turn: PreparedTurn | None) -> None:
        """Before a stopped or failed run's result is taken: every call it opened settled (a
        stopped agent settles its calls in its own task, maybe after the stop reached us)."""
        if turn is not None and not await turn.settled(SETTLE_WAIT_S):
            log.warning(
                "run %s: calls %s still unsettled after %s s; the result leaves them out (the "
                "ledger has them, with the run's id)",
                turn.run_id,
                sorted(str(r) for r in turn.unsettled),
                SETTLE_WAIT_S,
            )

    async def _turn(self, turn: PreparedTurn, events: _Events) -> Done:
        done: Done | None = None
        async with aclosing(self._chat.run(turn)) as stream:  # type: ignore[type-var]
            async for event in stream:
                if isinstance(event, Done):
                    done = event
                elif isinstance(event, Delta):
                    events.push("delta", {"text": event.text})
                    await events.tick(urgent=False)
                elif isinstance(event, ToolCalled):
                    events.push(
                        "tool_call",
                        json.loads(
                            json.dumps(
                                {"id": event.id, "name": event.name, "args": event.args},
                                default=str,
                            )
                        ),
                    )
                    await events.tick(urgent=True)
                elif isinstance(event, ToolReturned):
                    events.push(
                        "tool_result",
                        {"id": event.id, "name": event.name, "content": event.content},
                    )
                    await events.tick(urgent=True)
        assert done is not None
        return done

    async def _finish(
        self,
        local: LocalRun,
        turn: PreparedTurn | None,
        events: _Events,
        *,
        status: str,
        messages: list[Any],
        terminal: EventData,
        result: dict[str, Any],
        values: dict[str, Any] | None = None,
        done: Done | None = None,
        error: SwitchboardError | None = None,
    ) -> Outcome:
        run = local.run
        await events.stop()
        pending = [*events.pending, terminal]
        events.pending = []
        finished_at = await self.runs.finish(
            local.scope,
            run,
            status=status,
            values={"result": result, **(values or {})},
            messages=messages,
            events=pending,
            from_statuses=("running",) if turn is not None else ("pending", "running"),
        )
        if finished_at is None:
            log.warning(
                "run %s left its active status before it could finish as %s", run.id, status
            )
            return Outcome(await self.runs.get(local.scope, run.id), error=error)
        final = run.ended(status=status, result=result, finished_at=finished_at, **(values or {}))
        return Outcome(final, done=done, error=error)
