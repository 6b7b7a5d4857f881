"""Agent and config-layer queries, scoped to the unit of work's account. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import raiseload

from switchboard.db.base import utcnow
from switchboard.db.uow import UnitOfWork
from switchboard.db.upsert import dialect_insert, insert_ignoring_conflict
from switchboard.registry.models import Agent, AgentTag, ConfigLayer, layer_key
from switchboard.registry.schemas import AgentFilters


def agent_version(
    agent_id: uuid.UUID, updated_at: object, layers: Sequence[tuple[str, object, str]]
) -> tuple[object, ...]:
    """Everything a resolved agent is a function of: its id and ``updated_at`` (bumped by every
    update) and the (key, updated_at, source) of each config layer that applies, by key."""
    return (agent_id, updated_at, *sorted(layers, key=lambda layer: layer[0]))


class AgentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._account_id = uow.account.id

    async def insert(self, values: Mapping[str, Any], *, tags: Sequence[str]) -> Agent | None:
        """Insert an agent; ``None`` when the slug is taken in this account (UNIQUE index)."""
        now = utcnow()
        agent_id = uuid.uuid4()
        row = {
            **values,
            "id": agent_id,
            "account_id": self._account_id,
            "created_at": now,
            "updated_at": now,
        }
        if not await insert_ignoring_conflict(
            self._uow, Agent, row, conflict_columns=("account_id", "slug")
        ):
            return None
        await self.replace_tags(agent_id, tags)
        return await self.get(str(values["slug"]))

    async def get(
        self, slug: str, *, with_tags: bool = True, for_update: bool = False
    ) -> Agent | None:
        """The agent; ``with_tags=False`` skips the tags query (touching them then raises);
        ``for_update`` locks its row until the transaction ends (PostgreSQL; an SQLite write
        transaction holds the database's write lock already)."""
        statement = (
            select(Agent)
            .where(Agent.account_id == self._account_id, Agent.slug == slug)
            .execution_options(populate_existing=True)
        )
        if not with_tags:
            statement = statement.options(raiseload(Agent.tag_rows))
        if for_update:
            statement = statement.with_for_update()
        result = await self._uow.session.execute(statement)
        return result.scalar_one_or_none()

    async def version(self, slug: str, agent_id: uuid.UUID) -> tuple[object, ...] | None:
        """The version of the agent ``slug``, expected to be ``agent_id``, in one cheap statement
        (no JSON decoded, no objects built): see :func:`agent_version`. ``None`` when the
        account has no such agent."""
        keys = [layer_key(), layer_key(account_id=self._account_id), layer_key(agent_id=agent_id)]
        rows = (
            await self._uow.session.execute(
                select(
                    Agent.id,
                    Agent.updated_at,
                    ConfigLayer.key,
                    ConfigLayer.updated_at,
                    ConfigLayer.source,
                )
                .select_from(Agent)
                .outerjoin(ConfigLayer, ConfigLayer.key.in_(keys))
                .where(Agent.account_id == self._account_id, Agent.slug == slug)
                .order_by(ConfigLayer.key)
            )
        ).all()
        if not rows:
            return None
        # A re-created agent has another id, so its version differs whatever its layers.
        layers = [(row[2], row[3], row[4]) for row in rows if row[2] is not None]
        return agent_version(rows[0][0], rows[0][1], layers)

    def list_statement(
        self, filters: AgentFilters, *, after: str | None, limit: int
    ) -> Select[Agent]:
        """Keyset pagination by slug; every filter is served by an index."""
        statement = select(Agent).where(Agent.account_id == self._account_id)
        if filters.team is not None:
            statement = statement.where(Agent.team == filters.team)
        if filters.enabled is not None:
            statement = statement.where(Agent.enabled == filters.enabled)
        if filters.tag is not None:
            tagged = select(AgentTag.agent_id).where(
                AgentTag.account_id == self._account_id, AgentTag.tag == filters.tag
            )
            statement = statement.where(Agent.id.in_(tagged))
        if after is not None:
            statement = statement.where(Agent.slug > after)
        return statement.order_by(Agent.slug).limit(limit)

    async def page(self, filters: AgentFilters, *, after: str | None, limit: int) -> list[Agent]:
        result = await self._uow.session.execute(
            self.list_statement(filters, after=after, limit=limit)
        )
        return list(result.scalars())

    async def update(self, slug: str, values: Mapping[str, Any]) -> uuid.UUID | None:
        """Update in one statement (which also row-locks on PostgreSQL); the id, or None."""
        result = await self._uow.session.execute(
            update(Agent)
            .where(Agent.account_id == self._account_id, Agent.slug == slug)
            .values(**values, updated_at=utcnow())
            .returning(Agent.id)
        )
        return result.scalar_one_or_none()

    async def replace_tags(self, agent_id: uuid.UUID, tags: Sequence[str]) -> None:
        session = self._uow.session
        await session.execute(
            delete(AgentTag).where(
                AgentTag.account_id == self._account_id, AgentTag.agent_id == agent_id
            )
        )
        unique = sorted(set(tags))
        if unique:
            statement = dialect_insert(self._uow, AgentTag).on_conflict_do_nothing()
            await session.execute(
                statement,
                [{"agent_id": agent_id, "tag": t, "account_id": self._account_id} for t in unique],
            )

    async def delete(self, slug: str) -> bool:
        result = await self._uow.session.execute(
            delete(Agent)
            .where(Agent.account_id == self._account_id, Agent.slug == slug)
            .returning(Agent.id)
        )
        return result.first() is not None


class ConfigLayerRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def put(
        self,
        *,
        source: str,
        data: Mapping[str, Any],
        account_id: uuid.UUID | None = None,
        agent_id: uuid.UUID | None = None,
    ) -> None:
        key = layer_key(account_id=account_id, agent_id=agent_id)
        now = utcnow()
        statement = dialect_insert(self._uow, ConfigLayer).values(
            id=uuid.uuid4(),
            key=key,
            account_id=account_id,
            agent_id=agent_id,
            source=source,
            data=dict(data),
            updated_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"source": source, "data": dict(data), "updated_at": now},
        )
        await self._uow.session.execute(statement)

    async def for_agent(self, agent: Agent) -> dict[str, ConfigLayer]:
        """The global, account and agent layers that apply to ``agent``, by key."""
        return await self._by_keys(
            [layer_key(), layer_key(account_id=agent.account_id), layer_key(agent_id=agent.id)]
        )

    async def for_account(self, account_id: uuid.UUID) -> dict[str, ConfigLayer]:
        """The global and account layers (what a new agent of the account inherits)."""
        return await self._by_keys([layer_key(), layer_key(account_id=account_id)])

    async def account_versions(self, account_id: uuid.UUID) -> list[tuple[str, object, str]]:
        """(key, updated_at, source) of the global and account layers: a cheap version check
        before :meth:`for_account` (no JSON decoded, no objects built)."""
        result = await self._uow.session.execute(
            select(ConfigLayer.key, ConfigLayer.updated_at, ConfigLayer.source)
            .where(ConfigLayer.key.in_([layer_key(), layer_key(account_id=account_id)]))
            .order_by(ConfigLayer.key)
        )
        return [(row.key, row.updated_at, row.source) for row in result]

    async def _by_keys(self, keys: list[str]) -> dict[str, ConfigLayer]:
        result = await self._uow.session.execute(
            select(ConfigLayer).where(ConfigLayer.key.in_(keys))
        )
        return {layer.key: layer for layer in result.scalars()}
