"""Conversations: race-free creation, atomic sequence numbers, a bounded history window."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from switchboard.conversations.models import Conversation, Message
from switchboard.conversations.repository import ConversationRepository
from switchboard.conversations.schemas import NewMessage, StoredMessage
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.errors import Conflict, InvalidRequest, NotFound
from switchboard.pagination import (
    decode_int_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)

ConversationRef = uuid.UUID | Literal["default"] | None
SUMMARY_SOURCE_LIMIT = 200
SPOKEN = ("user", "assistant")  # the messages a client's copy of a history holds


@dataclass(frozen=True, slots=True)
class Opened:
    """The conversation a run is for, and the run's place in its queue."""

    conversation_id: uuid.UUID
    queue_seq: int
    new: bool  # created by this run: its first message seqs are reserved, no history
    # Messages a client's own copy of the history adds before the run's user message.
    prelude: tuple[NewMessage, ...] = ()
    forked_from: uuid.UUID | None = None  # the client's history diverged from this one


@dataclass(frozen=True, slots=True)
class TurnStart:
    conversation_id: uuid.UUID
    summary: str | None
    user_seq: int
    history: list[StoredMessage]
    to_summarize: list[StoredMessage]  # older messages not yet folded into the summary


def _stored(messages: Sequence[Message]) -> list[StoredMessage]:
    return [StoredMessage(m.seq, m.role, m.content, m.data) for m in messages]


def conversation_not_found(conversation_id: object) -> NotFound:
    return NotFound(f"conversation '{conversation_id}' not found", code="CONVERSATION_NOT_FOUND")


class ConversationService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    @staticmethod
    async def open_in(
        u: UnitOfWork,
        *,
        agent_id: uuid.UUID,
        agent_slug: str,
        ref: ConversationRef,
        user: str | None,
        client: Sequence[NewMessage] | None = None,
        active_runs: Callable[[uuid.UUID], Awaitable[Collection[uuid.UUID]]] | None = None,
        after_run: uuid.UUID | None = None,
    ) -> Opened:
        """Find or create the conversation a run is for and give the run its queue position.
        A new conversation's first message seqs are reserved for the run's messages.

        ``client`` is a client's own copy of the history (OpenAI-style clients send it whole,
        without the new user message). A new conversation starts with it. An existing one is
        compared with it under the conversation's lock: if the stored user and assistant
        messages — of settled turns: not those of its ``active_runs``, which the client cannot
        have seen — are a prefix of it, only the client's tail is added (the run then queues as
        any other); otherwise the run goes to a new conversation forked at the common prefix
        (the stored messages up to there, tool calls included, then the client's tail).

        ``after_run`` continues from one run's turn (a Responses ``previous_response_id``): in
        the same conversation when it is the latest settled turn there, else in a new one
        forked after it."""
        repo = ConversationRepository(u)
        if ref is None:
            prelude = tuple(client or ())
            conversation = await repo.add_new(
                agent_id=agent_id,
                agent_slug=agent_slug,
                user=user,
                first_seq_used=len(prelude) + 1,
                runs_queued=1,
            )
            return Opened(conversation.id, 1, new=True, prelude=prelude)
        conversation = await ConversationService._resolve(
            repo, agent_id=agent_id, agent_slug=agent_slug, ref=ref, user=user
        )
        if client is None and after_run is None:
            return Opened(conversation.id, await repo.allocate_run_seq(conversation.id), new=False)
        await repo.lock(conversation.id)
        unsettled = set(await active_runs(conversation.id)) if active_runs else set()
        if after_run is not None and after_run in unsettled:  # queue behind it
            return Opened(conversation.id, await repo.allocate_run_seq(conversation.id), new=False)
        stored = [m for m in await repo.visible(conversation.id) if m.run_id not in unsettled]
        if after_run is not None:
            cut = max((m.seq for m in stored if m.run_id == after_run), default=None)
            if cut is None:
                raise InvalidRequest(
                    f"run '{after_run}' left nothing in its conversation to continue from",
                    code="NOTHING_TO_CONTINUE",
                )
            if all(m.seq <= cut for m in stored):  # the latest turn: continue the conversation
                return Opened(
                    conversation.id, await repo.allocate_run_seq(conversation.id), new=False
                )
            prelude = tuple(NewMessage(m.role, m.content, m.data) for m in stored if m.seq <= cut)
        else:
            assert client is not None
            said = [m for m in stored if m.role in SPOKEN]
            common = 0
            for mine, theirs in zip(said, client, strict=False):
                if (mine.role, mine.content) != (theirs.role, theirs.content):
                    break
                common += 1
            if common == len(said):
                return Opened(
                    conversation.id,
                    await repo.allocate_run_seq(conversation.id),
                    new=False,
                    prelude=tuple(client[common:]),
                )
            cut = said[common - 1].seq if common else 0
            prelude = (
                *(NewMessage(m.role, m.content, m.data) for m in stored if m.seq <= cut),
                *client[common:],
            )
        fork = await repo.add_new(
            agent_id=agent_id,
            agent_slug=agent_slug,
            user=user,
            first_seq_used=len(prelude) + 1,
            runs_queued=1,
        )
        return Opened(fork.id, 1, new=True, prelude=prelude, forked_from=conversation.id)

    @staticmethod
    async def start_turn_in(
        u: UnitOfWork,
        opened: Opened,
        *,
        messages: Sequence[NewMessage],
        run_id: uuid.UUID,
        max_messages: int,
        summarize: bool,
    ) -> TurnStart:
        """Store the run's messages (a client's prelude, then the user message — the last) and
        load the history window the run sees."""
        repo = ConversationRepository(u)
        conversation_id = opened.conversation_id
        summary, summary_upto = None, 0
        if opened.new:  # its first seqs were reserved for these messages
            seq = 1
            await repo.add_messages(conversation_id, seq, messages, run_id=run_id)
            if len(messages) == 1:  # there is no history to load
                return TurnStart(conversation_id, None, 1, [], [])
        else:
            conversation = await repo.get(conversation_id)
            if conversation is None:
                raise conversation_not_found(conversation_id)
            summary, summary_upto = conversation.summary, conversation.summary_upto_seq
            seq = await repo.allocate(conversation_id, len(messages))
            await repo.add_messages(conversation_id, seq, messages, run_id=run_id)
        user_seq = seq + len(messages) - 1
        batch = summary_batch(max_messages) if summarize else 0
        recent = await repo.recent(conversation_id, before_seq=user_seq, limit=max_messages + batch)
        history = _from_a_user_turn(recent[-max_messages:])
        to_summarize: list[Message] = []
        window_start = history[0].seq if history else user_seq
        if summarize and window_start > summary_upto + 1:
            waiting = [m for m in recent if summary_upto < m.seq < window_start]
            if len(waiting) >= batch or (recent and recent[0].seq > summary_upto + 1):
                to_summarize = (
                    await repo.between(conversation_id, after=summary_upto, before=window_start)
                )[-SUMMARY_SOURCE_LIMIT:]
            else:  # too few to fold yet: they stay in the history, word for word
                history = _from_a_user_turn(waiting + history) or history
        return TurnStart(
            conversation_id, summary, user_seq, _stored(history), _stored(to_summarize)
        )

    @staticmethod
    async def finish_turn_in(
        u: UnitOfWork,
        conversation_id: uuid.UUID,
        messages: Sequence[NewMessage],
        *,
        run_id: uuid.UUID,
        excluded: bool = False,
    ) -> None:
        """Append a run's new messages; ``excluded`` (a rolled-back run) also takes its earlier
        messages out of the history."""
        repo = ConversationRepository(u)
        if messages:
            first = await repo.allocate(conversation_id, len(messages))
            await repo.add_messages(
                conversation_id, first, messages, run_id=run_id, excluded=excluded
            )
        if excluded:
            await repo.exclude_run(run_id)

    @staticmethod
    async def lock_in(u: UnitOfWork, conversation_id: uuid.UUID) -> None:
        """Lock the conversation's row first: a unit of work that changes a conversation's runs
        and then its messages (start, finish) must lock in the same order as one that queues a
        run (conversation, then runs), or two of them deadlock on PostgreSQL."""
        await ConversationRepository(u).lock(conversation_id)

    @staticmethod
    async def require_in(u: UnitOfWork, conversation_id: uuid.UUID) -> None:
        """404 unless the conversation exists in the unit of work's account."""
        if await ConversationRepository(u).get(conversation_id) is None:
            raise conversation_not_found(conversation_id)

    @staticmethod
    async def _resolve(
        repo: ConversationRepository,
        *,
        agent_id: uuid.UUID,
        agent_slug: str,
        ref: ConversationRef,
        user: str | None,
    ) -> Conversation:
        if ref == "default":
            key = f"{agent_id}:{user or ''}"
            await repo.insert_ignoring_conflict(
                conversation_id=uuid.uuid4(),
                agent_id=agent_id,
                agent_slug=agent_slug,
                user=user,
                default_key=key,
            )
            conversation = await repo.get_by_default_key(key)
            assert conversation is not None  # inserted, or the conflicting row exists
            return conversation
        conversation_id = ref if isinstance(ref, uuid.UUID) else uuid.uuid4()
        await repo.insert_ignoring_conflict(
            conversation_id=conversation_id,
            agent_id=agent_id,
            agent_slug=agent_slug,
            user=user,
            default_key=None,
        )
        conversation = await repo.get(conversation_id)
        if conversation is None:  # the id exists, in another account
            raise conversation_not_found(conversation_id)
        if conversation.agent_id != agent_id:
            raise Conflict(
                f"conversation '{conversation_id}' belongs to agent '{conversation.agent_slug}'",
                code="CONVERSATION_AGENT_MISMATCH",
            )
        return conversation

    async def save_summary(
        self, scope: AccountScope, conversation_id: uuid.UUID, summary: str, upto_seq: int
    ) -> None:
        async def op(u: UnitOfWork) -> None:
            await ConversationRepository(u).set_summary(conversation_id, summary, upto_seq)

        await self._uow.run(op, scope=scope)

    async def page(
        self, scope: AccountScope, *, agent: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Conversation], str | None]:
        before = decode_time_cursor(cursor)

        async def op(u: UnitOfWork) -> list[Conversation]:
            return await ConversationRepository(u).page(agent=agent, before=before, limit=limit + 1)

        rows = await self._uow.run(op, scope=scope, write=False)
        if len(rows) > limit:
            last = rows[limit - 1]
            return rows[:limit], encode_time_cursor(last.created_at, last.id)
        return rows, None

    async def messages(
        self, scope: AccountScope, conversation_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[Message], str | None]:
        after = decode_int_cursor(cursor)

        async def op(u: UnitOfWork) -> list[Message]:
            repo = ConversationRepository(u)
            if await repo.get(conversation_id) is None:
                raise conversation_not_found(conversation_id)
            return await repo.messages(conversation_id, after_seq=after, limit=limit + 1)

        rows = await self._uow.run(op, scope=scope, write=False)
        if len(rows) > limit:
            return rows[:limit], encode_cursor(str(rows[limit - 1].seq))
        return rows, None


def summary_batch(max_messages: int) -> int:
    """How many messages must have left the history window before they are folded into the
    summary: half a window. Until then they stay in the history, so a turn sends between
    ``max_messages`` and 1.5 × ``max_messages`` recent messages, and a long conversation pays
    for one summary call every ``max_messages / 4`` turns (a turn adds two messages or more)
    instead of one on every turn."""
    return max(1, max_messages // 2)


def _from_a_user_turn(history: list[Message]) -> list[Message]:
    """Drop leading messages until a user message, so a window never opens on a tool result
    whose call was cut off."""
    for index, message in enumerate(history):
        if message.role == "user":
            return history[index:]
    return []
