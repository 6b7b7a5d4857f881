"""Conversation and message queries, scoped to the unit of work's account. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, and_, or_, select, update

from switchboard.conversations.models import Conversation, Message
from switchboard.conversations.schemas import NewMessage
from switchboard.db.base import utcnow
from switchboard.db.uow import UnitOfWork
from switchboard.db.upsert import dialect_insert


class ConversationRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._account_id = uow.account.id

    async def insert_ignoring_conflict(
        self,
        *,
        conversation_id: uuid.UUID,
        agent_id: uuid.UUID,
        agent_slug: str,
        user: str | None,
        default_key: str | None,
    ) -> None:
        """Create the conversation unless its id (or default key) exists: never check first."""
        now = utcnow()
        statement = (
            dialect_insert(self._uow, Conversation)
            .values(
                id=conversation_id,
                account_id=self._account_id,
                agent_id=agent_id,
                agent_slug=agent_slug,
                user=user,
                default_key=default_key,
                summary_upto_seq=0,
                next_seq=1,
                next_run_seq=1,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )
        await self._uow.session.execute(statement)

    async def add_new(
        self,
        *,
        agent_id: uuid.UUID,
        agent_slug: str,
        user: str | None,
        first_seq_used: int,
        runs_queued: int = 0,
    ) -> Conversation:
        """A brand-new conversation (its id is ours and fresh: nothing can conflict), with
        ``first_seq_used`` message seqs and ``runs_queued`` run seqs already taken."""
        now = utcnow()
        conversation = Conversation(
            id=uuid.uuid4(),
            account_id=self._account_id,
            agent_id=agent_id,
            agent_slug=agent_slug,
            user=user,
            default_key=None,
            summary=None,
            summary_upto_seq=0,
            next_seq=first_seq_used + 1,
            next_run_seq=runs_queued + 1,
            created_at=now,
            updated_at=now,
        )
        self._uow.session.add(conversation)
        await self._uow.session.flush()
        return conversation

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        result = await self._uow.session.execute(
            select(Conversation)
            .where(Conversation.id == conversation_id, Conversation.account_id == self._account_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def get_by_default_key(self, default_key: str) -> Conversation | None:
        result = await self._uow.session.execute(
            select(Conversation).where(
                Conversation.default_key == default_key,
                Conversation.account_id == self._account_id,
            )
        )
        return result.scalar_one_or_none()

    async def allocate(self, conversation_id: uuid.UUID, count: int) -> int:
        """Reserve ``count`` sequence numbers atomically; returns the first."""
        result = await self._uow.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.account_id == self._account_id)
            .values(next_seq=Conversation.next_seq + count, updated_at=utcnow())
            .returning(Conversation.next_seq)
        )
        return int(result.scalar_one()) - count

    async def lock(self, conversation_id: uuid.UUID) -> None:
        """Take the conversation's row lock now (PostgreSQL; SQLite has one writer at a time
        anyway)."""
        if self._uow.dialect == "sqlite":
            return
        await self._uow.session.execute(
            select(Conversation.id)
            .where(Conversation.id == conversation_id, Conversation.account_id == self._account_id)
            .with_for_update()
        )

    async def allocate_run_seq(self, conversation_id: uuid.UUID) -> int:
        """The next run queue position of a conversation (locks its row until commit, so runs
        of one conversation are queued one at a time)."""
        result = await self._uow.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.account_id == self._account_id)
            .values(next_run_seq=Conversation.next_run_seq + 1)
            .returning(Conversation.next_run_seq)
        )
        return int(result.scalar_one()) - 1

    async def exclude_run(self, run_id: uuid.UUID) -> None:
        """A rolled-back run's messages leave the history (they stay for audit)."""
        await self._uow.session.execute(
            update(Message)
            .where(Message.run_id == run_id, Message.account_id == self._account_id)
            .values(excluded=True)
            .execution_options(synchronize_session=False)
        )

    async def add_messages(
        self,
        conversation_id: uuid.UUID,
        first_seq: int,
        messages: Sequence[NewMessage],
        *,
        run_id: uuid.UUID | None,
        excluded: bool = False,
    ) -> None:
        now = utcnow()
        for offset, message in enumerate(messages):
            self._uow.session.add(
                Message(
                    id=uuid.uuid4(),
                    conversation_id=conversation_id,
                    account_id=self._account_id,
                    seq=first_seq + offset,
                    role=message.role,
                    content=message.content,
                    data=message.data,
                    run_id=run_id,
                    excluded=excluded,
                    created_at=now,
                )
            )

    def _messages_of(self, conversation_id: uuid.UUID) -> Select[Message]:
        """Messages of one conversation of this account: the base of every message query."""
        return select(Message).where(
            Message.conversation_id == conversation_id, Message.account_id == self._account_id
        )

    def _history_of(self, conversation_id: uuid.UUID) -> Select[Message]:
        """The messages the model is shown again (rolled-back runs' left out)."""
        return self._messages_of(conversation_id).where(Message.excluded.is_(False))

    async def recent(
        self, conversation_id: uuid.UUID, *, before_seq: int, limit: int
    ) -> list[Message]:
        """The last ``limit`` messages before ``before_seq``, oldest first."""
        result = await self._uow.session.execute(
            self._history_of(conversation_id)
            .where(Message.seq < before_seq)
            .order_by(Message.seq.desc())
            .limit(limit)
        )
        return list(reversed(list(result.scalars())))

    async def visible(self, conversation_id: uuid.UUID) -> list[Message]:
        """The whole history the model may be shown again, oldest first."""
        result = await self._uow.session.execute(
            self._history_of(conversation_id).order_by(Message.seq)
        )
        return list(result.scalars())

    async def between(
        self, conversation_id: uuid.UUID, *, after: int, before: int
    ) -> list[Message]:
        result = await self._uow.session.execute(
            self._history_of(conversation_id)
            .where(Message.seq > after, Message.seq < before)
            .order_by(Message.seq)
        )
        return list(result.scalars())

    async def set_summary(self, conversation_id: uuid.UUID, summary: str, upto_seq: int) -> bool:
        """Store a summary unless a newer one is already there (conditional update)."""
        result = await self._uow.session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.account_id == self._account_id,
                Conversation.summary_upto_seq < upto_seq,
            )
            .values(summary=summary, summary_upto_seq=upto_seq)
        )
        return bool(getattr(result, "rowcount", 0))

    async def page(
        self, *, agent: str | None, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Conversation]:
        statement = select(Conversation).where(Conversation.account_id == self._account_id)
        if agent is not None:
            statement = statement.where(Conversation.agent_slug == agent)
        if before is not None:
            created, conv_id = before
            statement = statement.where(
                or_(
                    Conversation.created_at < created,
                    and_(Conversation.created_at == created, Conversation.id < conv_id),
                )
            )
        result = await self._uow.session.execute(
            statement.order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(limit)
        )
        return list(result.scalars())

    async def messages(
        self, conversation_id: uuid.UUID, *, after_seq: int, limit: int
    ) -> list[Message]:
        result = await self._uow.session.execute(
            self._messages_of(conversation_id)
            .where(Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
        return list(result.scalars())
