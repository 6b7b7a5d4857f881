"""Agent registry operations. One unit of work per operation; uniqueness decided by the
database (``INSERT … ON CONFLICT DO NOTHING``), never by a read before the insert."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from switchboard.cache import Cache
from switchboard.config import cascade
from switchboard.config.roles import (
    Actor,
    check_ceilings,
    model_allowed,
    model_not_allowed,
    operator_changes,
    operator_setting,
)
from switchboard.config.schema import EffectiveConfig
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.errors import Conflict, InvalidRequest, NotFound, PermanentError
from switchboard.pagination import decode_cursor, encode_cursor
from switchboard.registry.models import Agent, ConfigLayer, layer_key
from switchboard.registry.repository import (
    AgentRepository,
    ConfigLayerRepository,
    agent_version,
)
from switchboard.registry.schemas import (
    CASCADED_FIELDS,
    PROFILE_FIELDS,
    AgentCreate,
    AgentFilters,
    AgentPatch,
)


@dataclass(frozen=True, slots=True)
class ResolvedAgent:
    agent: Agent
    config: EffectiveConfig
    merged: cascade.Merged


def agent_not_found(slug: str) -> NotFound:
    return NotFound(f"agent '{slug}' not found", code="AGENT_NOT_FOUND")


def agent_exists(slug: str) -> Conflict:
    return Conflict(f"agent '{slug}' already exists", code="AGENT_ALREADY_EXISTS")


def cascade_layers(
    stored: Mapping[str, ConfigLayer],
    scope: AccountScope,
    *,
    agent: Agent | None,
    fields: Mapping[str, Any],
    overrides: Mapping[str, Any],
) -> list[cascade.Layer]:
    """global file → account file → agent file → the agent's database fields and overrides."""
    keys = [layer_key(), layer_key(account_id=scope.id)]
    if agent is not None:
        keys.append(layer_key(agent_id=agent.id))
    layers = [cascade.Layer(stored[k].source, stored[k].data) for k in keys if k in stored]
    layers.append(cascade.Layer(cascade.DB_SOURCE, overrides))
    db_fields = {name: fields[name] for name in CASCADED_FIELDS if fields.get(name) is not None}
    layers.append(cascade.Layer(cascade.DB_SOURCE, db_fields))
    return layers


ACCOUNT_CONFIGS: Cache[uuid.UUID, tuple[tuple[object, ...], EffectiveConfig]] = Cache(1000)
"""Account id → (version, merged config) for :func:`account_config_in`, process-wide.

Merging and validating a cascade costs ~1 ms; the result is a pure function of the stored
global and account layers, which change only through ``ConfigLayerRepository.put`` (which
bumps ``updated_at``). Every read first fetches the layers' (key, updated_at, source) — a cheap
query — and uses the entry only when that version matches, so a write by any process or
transaction is seen at once: correctness comes from the version, not from invalidation. One
entry per account (a new version replaces the old), least recently used evicted beyond 1000
accounts; a writer may ``invalidate(account_id)`` (or ``clear()`` after a global layer write)
to drop the entry early, which only frees memory."""


RESOLVED_AGENTS: Cache[tuple[uuid.UUID, str], tuple[tuple[object, ...], ResolvedAgent]] = Cache(
    10_000
)
"""(account id, agent slug) → (version, resolved agent) for :meth:`AgentService.resolve`, which
every chat calls. The same rule as :data:`ACCOUNT_CONFIGS`: a hit is used only after the
database's current version — the agent's id and ``updated_at`` (bumped by every agent update; a
deleted and re-created agent has a new id) and its layers' (key, updated_at, source), read in
one statement — equals the entry's, so a change by any process is seen by the next read. The
entry's version is taken from the very rows it was built from. What a hit saves is loading the
agent and its layers as objects and merging and validating the cascade."""


async def account_config_in(u: UnitOfWork) -> EffectiveConfig:
    """The account's config (defaults → global → account) read in the unit of work ``u``."""
    layers = ConfigLayerRepository(u)
    version = tuple(await layers.account_versions(u.account.id))
    cached = ACCOUNT_CONFIGS.get(u.account.id)
    if cached is not None and cached[0] == version:
        return cached[1]
    stored = await layers.for_account(u.account.id)
    merged = cascade.merge(cascade_layers(stored, u.account, agent=None, fields={}, overrides={}))
    config, problems = cascade.validate(merged)
    if config is None:
        raise invalid_config(problems)
    ACCOUNT_CONFIGS.put(u.account.id, (version, config))
    return config


def invalid_config(problems: Sequence[cascade.ConfigProblem]) -> InvalidRequest:
    listed = "; ".join(str(p) for p in problems)
    return InvalidRequest(
        f"invalid agent configuration: {listed}",
        code="INVALID_CONFIG",
        details={
            "problems": [{"source": p.source, "key": p.key, "message": p.message} for p in problems]
        },
    )


ConfigChecker = Callable[[EffectiveConfig], list[cascade.ConfigProblem]]


class AgentService:
    def __init__(self, uow: UnitOfWorkFactory, *, checks: Sequence[ConfigChecker] = ()) -> None:
        """``checks`` look at a valid effective config beyond its schema (tools that load,
        models that resolve); the runtime provides them."""
        self._uow = uow
        self._checks = tuple(checks)

    async def create(self, scope: AccountScope, data: AgentCreate, *, actor: Actor) -> Agent:
        async def op(u: UnitOfWork) -> Agent:
            agent = await self.create_in(u, data, actor=actor)
            if agent is None:
                raise agent_exists(data.slug)
            return agent

        return await self._uow.run(op, scope=scope)

    async def create_in(self, u: UnitOfWork, data: AgentCreate, *, actor: Actor) -> Agent | None:
        """Insert within an open unit of work; ``None`` when the slug is taken."""
        values = data.model_dump(exclude={"tags"})
        values["display_name"] = data.display_name or data.slug
        await self.check_config_in(u, agent=None, fields=values, overrides=data.config, actor=actor)
        return await AgentRepository(u).insert(values, tags=data.tags)

    async def get(self, scope: AccountScope, slug: str) -> Agent:
        async def op(u: UnitOfWork) -> Agent:
            agent = await AgentRepository(u).get(slug)
            if agent is None:
                raise agent_not_found(slug)
            return agent

        return await self._uow.run(op, scope=scope, write=False)

    async def page(
        self, scope: AccountScope, filters: AgentFilters, *, cursor: str | None, limit: int
    ) -> tuple[list[Agent], str | None]:
        after = decode_cursor(cursor, size=1)[0] if cursor else None

        async def op(u: UnitOfWork) -> list[Agent]:
            return await AgentRepository(u).page(filters, after=after, limit=limit + 1)

        rows = await self._uow.run(op, scope=scope, write=False)
        if len(rows) > limit:
            return rows[:limit], encode_cursor(rows[limit - 1].slug)
        return rows, None

    async def update(
        self, scope: AccountScope, slug: str, patch: AgentPatch, *, actor: Actor
    ) -> Agent:
        changes = patch.model_dump(exclude_unset=True)
        tags = changes.pop("tags", None)
        for required in ("display_name", "description", "capabilities", "enabled", "config"):
            if required in changes and changes[required] is None:
                raise InvalidRequest(f"'{required}' cannot be null", code="VALIDATION_ERROR")

        async def op(u: UnitOfWork) -> Agent:
            repo = AgentRepository(u)
            # Locked: the operator keys compared below are the ones this update replaces,
            # not a value a concurrent admin write is changing (check, then act, atomically).
            before = await repo.get(slug, with_tags=False, for_update=True)
            if before is None:
                raise agent_not_found(slug)
            old_overrides = dict(before.config)  # copied: the update below refreshes ``before``
            agent_id = await repo.update(slug, changes) if changes else None
            agent = await repo.get(slug)
            if agent is None or (changes and agent_id is None):
                raise agent_not_found(slug)
            if tags is not None:
                await repo.replace_tags(agent.id, tags)
                agent = await repo.get(slug)
                assert agent is not None
            fields = {name: getattr(agent, name) for name in CASCADED_FIELDS}
            await self.check_config_in(
                u,
                agent=agent,
                fields=fields,
                overrides=agent.config,
                actor=actor,
                old_overrides=old_overrides,
            )
            return agent

        return await self._uow.run(op, scope=scope)

    async def delete(self, scope: AccountScope, slug: str) -> None:
        async def op(u: UnitOfWork) -> None:
            if not await AgentRepository(u).delete(slug):
                raise agent_not_found(slug)

        await self._uow.run(op, scope=scope)

    async def resolve(self, scope: AccountScope, slug: str) -> ResolvedAgent:
        """The agent with its effective configuration and where each value came from."""

        async def op(u: UnitOfWork) -> ResolvedAgent:
            agents = AgentRepository(u)
            cached = RESOLVED_AGENTS.get((scope.id, slug))
            if cached is not None:
                version = await agents.version(slug, cached[1].agent.id)
                if version is None:
                    raise agent_not_found(slug)
                if version == cached[0]:
                    return cached[1]
            agent = await agents.get(slug, with_tags=False)
            if agent is None:
                raise agent_not_found(slug)
            stored = await ConfigLayerRepository(u).for_agent(agent)
            fields = {name: getattr(agent, name) for name in CASCADED_FIELDS}
            merged = cascade.merge(
                cascade_layers(stored, scope, agent=agent, fields=fields, overrides=agent.config)
            )
            config, problems = cascade.validate(merged)
            if config is None:
                raise invalid_config(problems)
            resolved = ResolvedAgent(agent=agent, config=config, merged=merged)
            layers = [(layer.key, layer.updated_at, layer.source) for layer in stored.values()]
            RESOLVED_AGENTS.put(
                (scope.id, slug), (agent_version(agent.id, agent.updated_at, layers), resolved)
            )
            return resolved

        return await self._uow.run(op, scope=scope, write=False)

    async def account_config(self, scope: AccountScope) -> EffectiveConfig:
        """The config an account's calls get without an agent: defaults → global → account."""

        return await self._uow.run(account_config_in, scope=scope, write=False)

    async def find(self, scope: AccountScope, slug: str) -> ResolvedAgent | None:
        """Like :meth:`resolve`, but ``None`` for an unknown slug."""
        try:
            return await self.resolve(scope, slug)
        except NotFound:
            return None

    async def import_legacy(self, scope: AccountScope, entries: Sequence[object]) -> list[Agent]:
        """Import a legacy registry (a list of agent profiles) all-or-nothing."""
        problems: list[dict[str, object]] = []
        parsed: list[tuple[int, AgentCreate]] = []
        first_seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            try:
                data = AgentCreate.model_validate(entry)
            except ValidationError as exc:
                problems.extend(
                    {
                        "index": index,
                        "field": ".".join(str(p) for p in e["loc"]) or "(entry)",
                        "message": e["msg"],
                    }
                    for e in exc.errors()
                )
                continue
            if data.slug in first_seen:
                problems.append(
                    {
                        "index": index,
                        "field": "slug",
                        "message": f"duplicate of entry {first_seen[data.slug]}",
                    }
                )
                continue
            first_seen[data.slug] = index
            parsed.append((index, data))

        async def op(u: UnitOfWork) -> list[Agent]:
            # Every entry that parsed is tried too, so one run reports every problem of both
            # phases (shape, then config and slug); any problem rolls the whole import back.
            created: list[Agent] = []
            failed: list[dict[str, object]] = list(problems)
            for index, data in parsed:
                try:
                    agent = await self.create_in(u, data, actor="operator")  # CLI only
                except PermanentError as exc:
                    failed.append({"index": index, "field": "config", "message": exc.message})
                    continue
                if agent is None:
                    failed.append(
                        {
                            "index": index,
                            "field": "slug",
                            "message": f"agent '{data.slug}' already exists",
                        }
                    )
                else:
                    created.append(agent)
            if failed:
                failed.sort(key=lambda problem: int(str(problem["index"])))
                raise _import_failed(failed)  # raising rolls the whole import back
            return created

        return await self._uow.run(op, scope=scope)

    async def check_config_in(
        self,
        u: UnitOfWork,
        *,
        agent: Agent | None,
        fields: Mapping[str, Any],
        overrides: Mapping[str, Any],
        actor: Actor,
        old_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise unless the agent's config would be valid — and, for a tenant, unless the write
        stays within the tenant's keys (403 ``OPERATOR_SETTING`` / ``MODEL_NOT_ALLOWED``)."""
        if actor == "tenant":
            changed = operator_changes(old_overrides or {}, overrides)
            if changed:  # before validation: a tenant learns nothing about operator keys
                raise operator_setting(changed)
        repo = ConfigLayerRepository(u)
        stored = (
            await repo.for_agent(agent)
            if agent is not None
            else await repo.for_account(u.account.id)
        )
        merged = cascade.merge(
            cascade_layers(stored, u.account, agent=agent, fields=fields, overrides=overrides)
        )
        config, problems = cascade.validate(merged)
        if "budget" in overrides:
            problems.append(
                cascade.ConfigProblem(
                    cascade.DB_SOURCE,
                    "budget",
                    "set budgets with PUT /v1/accounts/{account}/budget or in config files",
                )
            )
        if config is not None:
            if actor == "tenant":
                check_ceilings(old=old_overrides or {}, new=overrides, config=config)
                if not model_allowed(config):
                    raise model_not_allowed(config.model)
            for check in self._checks:
                problems += [
                    replace(p, source=cascade.source_of(merged, p.key)) for p in check(config)
                ]
        if problems:
            raise invalid_config(problems)

    async def apply_in(
        self, u: UnitOfWork, profile: AgentCreate, *, source: str, data: Mapping[str, Any]
    ) -> bool:
        """Create or update the agent ``profile`` describes and store its config layer
        (``source``, ``data``) in the open unit of work ``u``, as the operator; ``True`` when it
        was created. The agent's database overrides are kept and checked with the new layer."""
        repo = AgentRepository(u)
        agent = await self.create_in(u, profile, actor="operator")
        created = agent is not None
        if agent is None:
            values = profile.model_dump(include=set(PROFILE_FIELDS) - {"tags"})
            values["display_name"] = profile.display_name or profile.slug
            await repo.update(profile.slug, values)
            agent = await repo.get(profile.slug)
            assert agent is not None  # it conflicted, so it exists; this transaction holds it
            await repo.replace_tags(agent.id, profile.tags)
        await put_layer_in(u, source=source, data=data, agent_id=agent.id)
        fields = {name: getattr(agent, name) for name in CASCADED_FIELDS}
        await self.check_config_in(
            u, agent=agent, fields=fields, overrides=agent.config, actor="operator"
        )
        return created


async def put_layer_in(
    u: UnitOfWork,
    *,
    source: str,
    data: Mapping[str, Any],
    agent_id: uuid.UUID | None = None,
    shared: bool = False,
) -> None:
    """Store a config file's layer in the open unit of work ``u``: the global layer when
    ``shared``, else the layer of ``u``'s account, or of its agent ``agent_id``."""
    if shared:
        await ConfigLayerRepository(u).put(source=source, data=data)
        ACCOUNT_CONFIGS.clear()  # every account inherits the global layer
        return
    await ConfigLayerRepository(u).put(
        source=source, data=data, account_id=u.account.id, agent_id=agent_id
    )
    if agent_id is None:
        ACCOUNT_CONFIGS.invalidate(u.account.id)


async def account_layer_in(u: UnitOfWork) -> tuple[str, dict[str, Any]] | None:
    """The stored layer of ``u``'s account (its file's source and data), if any."""
    layers = await ConfigLayerRepository(u).for_account(u.account.id)
    current = layers.get(layer_key(account_id=u.account.id))
    return None if current is None else (current.source, dict(current.data))


def _import_failed(problems: list[dict[str, object]]) -> InvalidRequest:
    lines = "; ".join(f"entry {p['index']}: {p['field']}: {p['message']}" for p in problems)
    return InvalidRequest(
        f"nothing imported: {lines}", code="IMPORT_INVALID", details={"problems": problems}
    )
