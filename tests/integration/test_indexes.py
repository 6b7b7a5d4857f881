"""Every column the API filters or sorts by is indexed, and the list queries use the index."""

from __future__ import annotations

import pytest
from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql, sqlite

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork
from switchboard.registry.repository import AgentRepository
from switchboard.registry.schemas import AgentFilters

CASES = {
    "all": AgentFilters(),
    "tag": AgentFilters(tag="faq"),
    "team": AgentFilters(team="care"),
    "enabled": AgentFilters(enabled=True),
    "team+enabled": AgentFilters(team="care", enabled=False),
}


# SQLite names the index behind UNIQUE(account_id, slug) itself.
SQLITE_INDEX = {
    "all": "sqlite_autoindex_agents_2",
    "tag": "sqlite_autoindex_agents_2",
    "team": "ix_agents_account_id_team_slug",
    "enabled": "ix_agents_account_id_enabled_slug",
    "team+enabled": "ix_agents_account_id_team_slug",
}


def _literal_sql(statement: Select[object], dialect: str) -> str:
    compiled = statement.compile(
        dialect=postgresql.dialect() if dialect == "postgresql" else sqlite.dialect(),
        compile_kwargs={"literal_binds": True},
    )
    return str(compiled)


async def _plan(u: UnitOfWork, statement: Select[object]) -> str:
    sql = _literal_sql(statement, u.dialect)
    if u.dialect == "postgresql":
        await u.session.execute(text("SET LOCAL enable_seqscan = off"))
        rows = await u.session.execute(text(f"EXPLAIN {sql}"))
        return "\n".join(str(r[0]) for r in rows)
    rows = await u.session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("paged", [False, True])
async def test_agent_list_queries_use_indexes(
    container: Container, account: AccountScope, case: str, paged: bool
) -> None:
    async with container.uow(scope=account, write=False) as u:
        statement = AgentRepository(u).list_statement(
            CASES[case], after="m" if paged else None, limit=50
        )
        plan = await _plan(u, statement)
    if u.dialect == "postgresql":
        assert "Seq Scan" not in plan, plan
        assert "Sort" not in plan, plan  # the index already yields slug order
        assert "Index Scan using" in plan, plan
        if case == "tag":
            assert "ix_agent_tags_account_id_tag_agent_id" in plan, plan
        return
    assert f"SEARCH agents USING INDEX {SQLITE_INDEX[case]}" in plan, plan
    assert "SCAN agents" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    if case == "tag":
        assert "ix_agent_tags_account_id_tag_agent_id" in plan, plan


async def test_key_lookup_uses_the_unique_index(container: Container) -> None:
    unscoped = CrossAccount("test: the plan of the authentication lookup")
    async with container.uow(scope=unscoped, write=False) as u:
        if u.dialect == "postgresql":
            await u.session.execute(text("SET LOCAL enable_seqscan = off"))
            rows = await u.session.execute(
                text("EXPLAIN SELECT id FROM api_keys WHERE key_hash = 'x' AND revoked_at IS NULL")
            )
            plan = "\n".join(str(r[0]) for r in rows)
            assert "uq_api_keys_key_hash" in plan, plan
        else:
            rows = await u.session.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM api_keys WHERE key_hash = 'x'")
            )
            plan = "\n".join(str(r[-1]) for r in rows)
            assert "uq_api_keys_key_hash" in plan or "sqlite_autoindex_api_keys" in plan, plan
