"""Runs in the database: creation (idempotent, queued per conversation, strategies applied in
the same unit of work), start, events, finish, cancel and the sweep of dead owners' runs. Each
state change is one conditional update in its own unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from switchboard.conversations.schemas import NewMessage
from switchboard.conversations.service import (
    ConversationRef,
    ConversationService,
    Opened,
    TurnStart,
)
from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork, UnitOfWorkFactory
from switchboard.errors import ConversationBusy, InvalidRequest, NotFound
from switchboard.ledger.leases import LeaseRepository
from switchboard.money import nano_to_usd_str
from switchboard.pagination import decode_time_cursor, encode_time_cursor
from switchboard.runs.models import ACTIVE_STATUSES, Run
from switchboard.runs.repository import RunRepository
from switchboard.runs.schemas import EventData, EventView, RunView

SWEEP_BATCH = 500
# The result of a run stopped before it started: no reply, no provider call.
NOTHING_SPENT = {
    "reply": "",
    "llm_request_ids": [],
    "usage": {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0},
    "cost_usd": nano_to_usd_str(0),
}
SWEEP_MAX_BATCHES = 100
StartState = Literal["started", "waiting", "gone"]


@dataclass(frozen=True, slots=True)
class NewRun:
    """What creates a run (validated by the caller)."""

    agent_id: uuid.UUID
    agent_slug: str
    conversation: ConversationRef
    user: str | None
    message: NewMessage
    client: tuple[NewMessage, ...] | None  # a client's own copy of the history (OpenAI-style)
    after_run: uuid.UUID | None  # continue from this run's turn (forking if it is not the last)
    strategy: str
    on_disconnect: str
    background: bool
    request: dict[str, Any]
    fingerprint: str
    idempotency_key: str | None
    key_ttl_s: float
    owner_id: uuid.UUID
    max_messages: int
    summarize: bool


@dataclass(frozen=True, slots=True)
class Created:
    run: RunView
    replayed: bool
    start: TurnStart | None = None  # set when the run started at once
    stopping: tuple[uuid.UUID, ...] = ()  # running runs this one asked to stop (interrupt)
    prelude: tuple[NewMessage, ...] = ()  # stored before the user message when it starts
    forked_from: uuid.UUID | None = None  # the client's history diverged from this one


class _Replay(Exception):
    """The idempotency key exists: roll this unit of work back and answer with its run."""


def run_not_found(run_id: object) -> NotFound:
    return NotFound(f"run '{run_id}' not found", code="RUN_NOT_FOUND")


def _event(run: Run | uuid.UUID, status: str) -> dict[str, Any]:
    run_id = run.id if isinstance(run, Run) else run
    return {"run_id": str(run_id), "status": status}


class RunService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def create(self, scope: AccountScope, new: NewRun) -> Created:
        """One unit of work: the conversation, the run (its idempotency key decided by a unique
        constraint), the strategy against the conversation's active runs, and — when nothing
        is ahead of it — the start: user message stored, history loaded."""
        run_id = uuid.uuid4()

        async def op(u: UnitOfWork) -> Created:
            repo = RunRepository(u)

            async def active_runs(conversation_id: uuid.UUID) -> list[uuid.UUID]:
                return [r.id for r in await repo.active(conversation_id, before_seq=2**31 - 1)]

            opened = await ConversationService.open_in(
                u,
                agent_id=new.agent_id,
                agent_slug=new.agent_slug,
                ref=new.conversation,
                user=new.user,
                client=new.client,
                active_runs=active_runs,
                after_run=new.after_run,
            )
            now = utcnow()
            values: dict[str, Any] = {
                "id": run_id,
                "agent_id": new.agent_id,
                "agent_slug": new.agent_slug,
                "conversation_id": opened.conversation_id,
                "queue_seq": opened.queue_seq,
                "status": "running" if opened.new else "pending",
                "multitask_strategy": new.strategy,
                "on_disconnect": new.on_disconnect,
                "background": new.background,
                "request": new.request,
                "fingerprint": new.fingerprint,
                "idempotency_key": new.idempotency_key,
                "idempotency_expires_at": (
                    now + timedelta(seconds=new.key_ttl_s) if new.idempotency_key else None
                ),
                "owner_id": new.owner_id,
                "last_event_seq": 2 if opened.new else 1,
                "created_at": now,
                "started_at": now if opened.new else None,
            }
            if not await repo.insert(values):
                raise _Replay
            events: list[EventData] = [
                (
                    "created",
                    _event(run_id, "pending") | {"conversation_id": str(opened.conversation_id)},
                )
            ]
            stopping: tuple[uuid.UUID, ...] = ()
            started = opened.new
            if not opened.new:
                active = await repo.active(opened.conversation_id, before_seq=opened.queue_seq)
                if active and new.strategy == "reject":
                    raise ConversationBusy(
                        f"conversation '{opened.conversation_id}' has an active run "
                        f"'{active[0].id}' (multitask_strategy=reject)",
                        details={"active_run_id": str(active[0].id)},
                    )
                if active and new.strategy in ("interrupt", "rollback"):
                    for run in active:
                        if run.status == "pending":
                            await self._stop_pending_in(repo, run.id, new.strategy)
                    stopping = tuple(r.id for r in active if r.status == "running")
                    await repo.request_stop(stopping, new.strategy, now)
                    active = [r for r in active if r.status == "running"]
                if not active:
                    started = await repo.start(run_id, now=now) is not None
            start = None
            if started:
                values |= {"status": "running", "started_at": now, "last_event_seq": 2}
                start = await ConversationService.start_turn_in(
                    u,
                    opened,
                    messages=[*opened.prelude, new.message],
                    run_id=run_id,
                    max_messages=new.max_messages,
                    summarize=new.summarize,
                )
                events.append(("started", _event(run_id, "running")))
            await repo.add_events(run_id, 1, events)
            view = RunView.from_values({"account_id": scope.id, **values})
            return Created(
                run=view,
                replayed=False,
                start=start,
                stopping=stopping,
                prelude=opened.prelude,
                forked_from=opened.forked_from,
            )

        for _ in range(3):
            try:
                return await self._uow.run(op, scope=scope)
            except _Replay:
                existing = await self._by_key(scope, new.idempotency_key or "")
                if existing is None:
                    continue  # the key was released meanwhile: create afresh
                if existing.fingerprint != new.fingerprint:
                    raise InvalidRequest(
                        "this Idempotency-Key was used with a different request",
                        code="IDEMPOTENCY_KEY_REUSED",
                        details={"run_id": str(existing.id)},
                    ) from None
                return Created(run=RunView.of(existing), replayed=True)
        raise AssertionError("unreachable: an idempotency key kept vanishing")  # pragma: no cover

    async def _by_key(self, scope: AccountScope, key: str) -> Run | None:
        async def op(u: UnitOfWork) -> Run | None:
            return await RunRepository(u).by_key(key)

        return await self._uow.run(op, scope=scope, write=False)

    @staticmethod
    async def _stop_pending_in(repo: RunRepository, run_id: uuid.UUID, reason: str) -> bool:
        got = await repo.finish(
            run_id,
            from_statuses=("pending",),
            events=1,
            values={"status": "cancelled", "stop_reason": reason, "result": NOTHING_SPENT},
        )
        if got is None:
            return False
        await repo.add_events(
            run_id, got[0], [("cancelled", _event(run_id, "cancelled") | {"reason": reason})]
        )
        return True

    async def start(
        self,
        scope: AccountScope,
        run: RunView,
        *,
        messages: Sequence[NewMessage],
        max_messages: int,
        summarize: bool,
    ) -> tuple[StartState, TurnStart | None, RunView]:
        """pending → running once every run queued before it has finished; the run as it is
        then (its ``started_at`` set when it started)."""

        async def op(u: UnitOfWork) -> tuple[StartState, TurnStart | None, RunView]:
            repo = RunRepository(u)
            await ConversationService.lock_in(u, run.conversation_id)
            now = utcnow()
            seq = await repo.start(run.id, now=now)
            if seq is None:
                current = await repo.get(run.id)
                waiting = current is not None and current.status == "pending"
                return ("waiting" if waiting else "gone"), None, run
            start = await ConversationService.start_turn_in(
                u,
                Opened(run.conversation_id, run.queue_seq, new=False),
                messages=messages,
                run_id=run.id,
                max_messages=max_messages,
                summarize=summarize,
            )
            await repo.add_events(run.id, seq, [("started", _event(run.id, "running"))])
            return "started", start, replace(run, status="running", started_at=now)

        return await self._uow.run(op, scope=scope)

    async def append_events(
        self, scope: AccountScope, run_id: uuid.UUID, events: Sequence[EventData]
    ) -> int | None:
        """Store events of a running run with the next seqs; the first, or None if the run is
        no longer running (nothing stored)."""

        async def op(u: UnitOfWork) -> int | None:
            repo = RunRepository(u)
            first = await repo.reserve_events(run_id, len(events))
            if first is not None:
                await repo.add_events(run_id, first, events)
            return first

        return await self._uow.run(op, scope=scope, insist=True)

    async def finish(
        self,
        scope: AccountScope,
        run: RunView,
        *,
        status: str,
        values: dict[str, Any],
        messages: Sequence[NewMessage],
        events: Sequence[EventData],
        from_statuses: Sequence[str] = ("running",),
    ) -> datetime | None:
        """The run's last unit of work: its final status and result, its new messages and its
        last events (the terminal one included), all or nothing. Returns when it finished, or
        None if it was no longer in ``from_statuses`` (swept meanwhile): nothing is written
        then."""

        async def op(u: UnitOfWork) -> datetime | None:
            repo = RunRepository(u)
            await ConversationService.lock_in(u, run.conversation_id)
            got = await repo.finish(
                run.id,
                from_statuses=from_statuses,
                events=len(events),
                values={"status": status, **values},
            )
            if got is None:
                return None
            first, reason, finished_at = got
            rollback = status == "cancelled" and reason == "rollback"
            await ConversationService.finish_turn_in(
                u, run.conversation_id, messages, run_id=run.id, excluded=rollback
            )
            await repo.add_events(run.id, first, events)
            return finished_at

        return await self._uow.run(op, scope=scope, insist=True)

    async def cancel(self, scope: AccountScope, run_id: uuid.UUID) -> RunView:
        """Idempotent: a pending run is cancelled at once; a running one is asked to stop (its
        owner stops it, records its spend and writes the terminal event); a finished one is
        left as it is."""

        async def op(u: UnitOfWork) -> RunView:
            repo = RunRepository(u)
            run = await repo.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            if run.status == "pending" and not await self._stop_pending_in(repo, run_id, "cancel"):
                run = await repo.get(run_id)  # it started meanwhile
                assert run is not None
            if run.status == "running":
                await repo.request_stop([run_id], "cancel", utcnow())
            found = await repo.get(run_id)
            assert found is not None
            return RunView.of(found)

        return await self._uow.run(op, scope=scope)

    async def get(self, scope: AccountScope, run_id: uuid.UUID) -> RunView:
        async def op(u: UnitOfWork) -> RunView:
            run = await RunRepository(u).get(run_id)
            if run is None:
                raise run_not_found(run_id)
            return RunView.of(run)

        return await self._uow.run(op, scope=scope, write=False)

    async def events(
        self, scope: AccountScope, run_id: uuid.UUID, *, after: int, limit: int = 500
    ) -> tuple[RunView, list[EventView]]:
        """The run (for its status) and its events after seq ``after``, read together."""

        async def op(u: UnitOfWork) -> tuple[RunView, list[EventView]]:
            repo = RunRepository(u)
            run = await repo.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            events = await repo.events_after(run_id, after, limit)
            return RunView.of(run), [EventView(e.seq, e.type, e.data, e.created_at) for e in events]

        return await self._uow.run(op, scope=scope, write=False)

    async def page(
        self,
        scope: AccountScope,
        *,
        status: str | None = None,
        agent: str | None = None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[RunView], str | None]:
        """The account's runs, newest first, a page at a time (optionally one status or one
        agent's)."""
        before = decode_time_cursor(cursor)

        async def op(u: UnitOfWork) -> list[Run]:
            return await RunRepository(u).page(
                status=status, agent=agent, before=before, limit=limit + 1
            )

        rows = await self._uow.run(op, scope=scope, write=False)
        views = [RunView.of(r) for r in rows]
        if len(rows) > limit:
            last = rows[limit - 1]
            return views[:limit], encode_time_cursor(last.created_at, last.id)
        return views, None

    async def of_conversation(
        self, scope: AccountScope, conversation_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[RunView], str | None]:
        before = decode_time_cursor(cursor)

        async def op(u: UnitOfWork) -> list[Run]:
            await ConversationService.require_in(u, conversation_id)
            return await RunRepository(u).of_conversation(
                conversation_id, before=before, limit=limit + 1
            )

        rows = await self._uow.run(op, scope=scope, write=False)
        views = [RunView.of(r) for r in rows]
        if len(rows) > limit:
            last = rows[limit - 1]
            return views[:limit], encode_time_cursor(last.created_at, last.id)
        return views, None

    async def stop_requested(self, run_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
        """Which of this process's running runs were asked to stop (by any process)."""

        async def op(u: UnitOfWork) -> list[tuple[uuid.UUID, str]]:
            return await RunRepository(u).stop_requested(run_ids)

        return await self._uow.run(
            op, scope=CrossAccount("the run watcher: this process's runs"), write=False
        )

    async def sweep(self, *, alive: uuid.UUID | None = None) -> int:
        """Active runs of dead processes (expired leases) become ``interrupted``, each with its
        terminal event; their messages need no repair (a run's messages are written at its
        end, all together). Their ledger rows are the ledger sweeper's. ``alive`` (the
        sweeping process) is never taken for dead, even if its lease lapsed under load."""

        async def op(u: UnitOfWork) -> tuple[int, int]:
            repo = RunRepository(u)
            rows = await repo.abandoned(
                LeaseRepository.expired(utcnow()), alive=alive, limit=SWEEP_BATCH
            )
            swept = 0
            for run in rows:
                view = RunRepository(u.bound_to(AccountScope(run.account_id, "")))
                got = await view.finish(
                    run.id,
                    from_statuses=ACTIVE_STATUSES,
                    events=1,
                    values={
                        "status": "interrupted",
                        "error_code": "RUN_OWNER_DIED",
                        "error_class": "transient",
                        "error_message": "the server process running this run stopped",
                    },
                )
                if got is not None:
                    await view.add_events(
                        run.id,
                        got[0],
                        [
                            (
                                "interrupted",
                                _event(run.id, "interrupted") | {"code": "RUN_OWNER_DIED"},
                            )
                        ],
                    )
                    swept += 1
            return len(rows), swept

        total = 0
        for _ in range(SWEEP_MAX_BATCHES):
            found, swept = await self._uow.run(
                op, scope=CrossAccount("the run sweeper: dead processes' runs of every account")
            )
            total += swept
            if found < SWEEP_BATCH:
                break
        return total

    async def forget_keys(self) -> int:
        """Release idempotency keys past their retention."""

        async def op(u: UnitOfWork) -> int:
            return await RunRepository(u).forget_keys(utcnow())

        return await self._uow.run(
            op, scope=CrossAccount("idempotency key retention: every account's runs")
        )
