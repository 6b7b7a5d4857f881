"""The per-day usage rollup equals the ledger (SQLite and PostgreSQL): every settlement, a
late settlement of a swept row and the sweep change it in their own unit of work; verify
finds a corrupted rollup and rebuild repairs it; a row's day is its UTC day in Python and in
SQL alike, whatever the session's time zone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import delete, insert, text, update
from sqlalchemy.engine import make_url

from switchboard.bootstrap import Container, build_container
from switchboard.config.schema import PriceConfig
from switchboard.db.base import utcnow
from switchboard.db.migrate import alembic_config, upgrade
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork
from switchboard.errors import ProviderUnavailable
from switchboard.ledger.models import LlmRequest, ProcessLease, UsageDaily
from switchboard.ledger.rollup import RollupRow
from switchboard.ledger.rollup_repository import RollupRepository
from switchboard.ledger.schemas import LedgerFilters
from switchboard.ledger.service import CallContext, TokenUsage
from tests.conftest import BACKENDS, PG_ADMIN_URL, fresh_database, make_settings, unique
from tests.integration.test_indexes import _plan
from tests.live import PRICE

PRICES = {"fake-model": PriceConfig(**PRICE)}
ANYONE = CrossAccount("test: the rollup of several accounts")


def _ctx(
    scope: AccountScope, *, agent: str | None = "bot", model: str = "fake-model"
) -> CallContext:
    return CallContext(
        scope=scope,
        run_id=uuid.uuid4(),
        provider="fake",
        model=model,
        agent_slug=agent,
        prices=PRICES,
    )


async def _call(
    container: Container,
    ctx: CallContext,
    *,
    status: Any = "complete",
    usage: TokenUsage | None = None,
    latency_ms: int = 100,
    error: Any = None,
) -> uuid.UUID:
    row_id, reservation = await container.ledger.open(ctx, estimated_input_tokens=40)
    await container.ledger.finish(
        ctx,
        row_id,
        status=status,
        usage=usage or TokenUsage(input_tokens=10, output_tokens=5),
        latency_ms=latency_ms,
        error=error,
        reservation=reservation,
    )
    return row_id


def _days() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    return today - timedelta(days=1), today + timedelta(days=2)


async def _rollup(container: Container, scope: AccountScope | None) -> list[RollupRow]:
    since, until = _days()
    return await container.ledger.rollup(scope, since=since, until=until)


def _by(rows: list[RollupRow]) -> dict[tuple[str, str, str, str], RollupRow]:
    return {(r.agent_slug, r.model, r.status, r.error_class): r for r in rows}


async def _accounts(container: Container, n: int) -> list[AccountScope]:
    made = [await container.tenancy.create_account(slug=unique("roll"), name="R") for _ in range(n)]
    return [AccountScope(a.id, a.slug) for a in made]


async def test_each_settlement_adds_its_call_to_its_days_row(
    container: Container, account: AccountScope
) -> None:
    bot, unlisted, nobody = (
        _ctx(account),
        _ctx(account, model="unlisted-model-xyz"),
        _ctx(account, agent=None),
    )
    ids = [
        await _call(container, bot, latency_ms=120),
        await _call(container, bot, latency_ms=40),
        await _call(
            container,
            bot,
            status="error",
            usage=TokenUsage(input_tokens=40, source="estimated"),
            latency_ms=3000,
            error=ProviderUnavailable("down"),
        ),
        await _call(
            container,
            bot,
            status="cancelled",
            usage=TokenUsage(input_tokens=12, output_tokens=3, source="partial"),
            latency_ms=700,
        ),
        await _call(container, unlisted, latency_ms=90),
        await _call(container, nobody, latency_ms=70_000),
    ]
    rows = _by(await _rollup(container, account))
    ledger = {r.id: r for r in await container.ledger.rows(account, ids)}
    assert set(rows) == {
        ("bot", "fake-model", "complete", ""),
        ("bot", "fake-model", "error", "transient"),
        ("bot", "fake-model", "cancelled", ""),
        ("bot", "unlisted-model-xyz", "complete", ""),
        ("", "fake-model", "complete", ""),
    }
    complete = rows[("bot", "fake-model", "complete", "")]
    assert (complete.requests, complete.input_tokens, complete.output_tokens) == (2, 20, 10)
    assert complete.cost_nano_usd == sum(ledger[i].cost_nano_usd for i in ids[:2]) > 0
    assert (complete.latency_count, complete.latency_sum_ms) == (2, 160)
    assert complete.latency_buckets == (1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert complete.day == ledger[ids[0]].created_at.date()
    assert complete.account_slug == account.slug
    error = rows[("bot", "fake-model", "error", "transient")]
    assert (error.estimated_requests, error.estimated_input_tokens) == (1, 40)
    assert error.estimated_cost_nano_usd == error.cost_nano_usd == ledger[ids[2]].cost_nano_usd
    assert error.latency_buckets[6] == 1  # 3000 ms: over 2500, up to 5000
    cancelled = rows[("bot", "fake-model", "cancelled", "")]
    assert (cancelled.input_tokens, cancelled.estimated_requests) == (12, 0)  # partial: measured
    unpriced = rows[("bot", "unlisted-model-xyz", "complete", "")]
    assert (unpriced.unpriced_requests, unpriced.cost_nano_usd) == (1, 0)
    overflow = rows[("", "fake-model", "complete", "")]
    assert overflow.latency_buckets[-1] == 1
    assert await container.ledger.verify_rollup(account_ids=[account.id]) == []


async def test_concurrent_settlements_of_one_key_all_count(
    container: Container, account: AccountScope
) -> None:
    n = 40
    ctx = _ctx(account)
    opened = await asyncio.gather(*(container.ledger.open(ctx) for _ in range(n)))
    await asyncio.gather(
        *(
            container.ledger.finish(
                ctx,
                row_id,
                status="complete",
                usage=TokenUsage(input_tokens=i, output_tokens=1),
                latency_ms=i,
                reservation=reservation,
            )
            for i, (row_id, reservation) in enumerate(opened)
        )
    )
    [row] = await _rollup(container, account)
    assert (row.requests, row.input_tokens, row.latency_sum_ms) == (n, sum(range(n)), sum(range(n)))
    assert await container.ledger.verify_rollup(account_ids=[account.id]) == []


async def _expire_own_lease(container: Container) -> None:
    async def expire(u: UnitOfWork) -> None:
        await u.session.execute(
            update(ProcessLease)
            .where(ProcessLease.owner_id == container.ledger.lease.owner_id)
            .values(expires_at=utcnow())
        )

    await container.uow.run(expire)


async def test_the_sweep_and_a_late_settlement_move_calls_between_keys(
    container: Container, account: AccountScope
) -> None:
    ctx = _ctx(account)
    opened = [await container.ledger.open(ctx, estimated_input_tokens=40) for _ in range(3)]
    await _expire_own_lease(container)
    try:
        assert await container.ledger.sweep() >= 3
        [swept] = await _rollup(container, account)
        assert (swept.status, swept.error_class) == ("interrupted", "transient")
        assert (swept.requests, swept.estimated_requests, swept.input_tokens) == (3, 3, 120)
        assert (swept.latency_count, sum(swept.latency_buckets)) == (0, 0)  # no latency known
        assert await container.ledger.verify_rollup(account_ids=[account.id]) == []

        for n, (row_id, reservation) in enumerate(opened, start=1):
            await container.ledger.finish(  # the provider's answer, after the sweep
                ctx,
                row_id,
                status="complete",
                usage=TokenUsage(input_tokens=123, output_tokens=45),
                latency_ms=200,
                reservation=reservation,
            )
            rows = _by(await _rollup(container, account))
            assert rows[("bot", "fake-model", "complete", "")].requests == n
            left = rows.get(("bot", "fake-model", "interrupted", "transient"))
            assert (left.requests if left else 0) == 3 - n
            assert await container.ledger.verify_rollup(account_ids=[account.id]) == []
        assert set(rows) == {("bot", "fake-model", "complete", "")}  # the emptied row is gone
        assert container.ledger.counters.resettled._value.get() == 3
    finally:
        await container.ledger.lease.renew()


async def test_verify_reports_a_corrupted_rollup_and_rebuild_repairs_it(
    container: Container,
) -> None:
    a, b = await _accounts(container, 2)
    await _call(container, _ctx(a), latency_ms=10)
    await _call(container, _ctx(a), latency_ms=20)
    await _call(container, _ctx(a), status="error", error=ProviderUnavailable("down"))
    await _call(container, _ctx(b))
    assert await container.ledger.verify_rollup(account_ids=[a.id, b.id]) == []
    [complete] = [r for r in await _rollup(container, a) if r.status == "complete"]

    async def corrupt(u: UnitOfWork) -> None:
        of_a = UsageDaily.account_id == a.id
        await u.session.execute(
            update(UsageDaily)
            .where(of_a, UsageDaily.status == "complete")
            .values(requests=UsageDaily.requests + 1, latency_le_50=UsageDaily.latency_le_50 + 2)
        )
        await u.session.execute(delete(UsageDaily).where(of_a, UsageDaily.status == "error"))
        await u.session.execute(
            insert(UsageDaily).values(
                **{**complete.key.values(), "status": "cancelled"},
                account_slug=a.slug,
                requests=5,
            )
        )
        await u.session.execute(
            update(UsageDaily)
            .where(UsageDaily.account_id == b.id)
            .values(cost_nano_usd=UsageDaily.cost_nano_usd + 1)
        )

    await container.uow.run(corrupt, scope=ANYONE)
    found = {
        m.key.status: {d.counter: (d.stored, d.ledger) for d in m.differences}
        for m in await container.ledger.verify_rollup(account_ids=[a.id])
    }
    assert found["complete"] == {"requests": (3, 2), "latency_le_50": (4, 2)}
    assert found["error"]["requests"] == (0, 1)
    assert found["cancelled"] == {"requests": (5, 0)}
    [of_b] = await container.ledger.verify_rollup(account_ids=[b.id])
    assert [(d.counter, d.stored - d.ledger) for d in of_b.differences] == [("cost_nano_usd", 1)]

    assert await container.ledger.rebuild_rollup(account_ids=[a.id]) == 2
    assert await container.ledger.verify_rollup(account_ids=[a.id]) == []
    assert len(await container.ledger.verify_rollup(account_ids=[b.id])) == 1  # not rebuilt
    assert await container.ledger.rebuild_rollup(account_ids=[b.id]) == 1
    assert await container.ledger.verify_rollup(account_ids=[a.id, b.id]) == []


async def test_rollup_reads_one_account_or_every_account(container: Container) -> None:
    a, b = await _accounts(container, 2)
    await _call(container, _ctx(a))
    await _call(container, _ctx(b))
    await _call(container, _ctx(b, agent="other"))
    assert {r.account_id for r in await _rollup(container, a)} == {a.id}
    assert len(await _rollup(container, b)) == 2
    everyone = [r for r in await _rollup(container, None) if r.account_id in (a.id, b.id)]
    assert len(everyone) == 3
    since, _ = _days()
    assert await container.ledger.rollup(a, since=since, until=since) == []


async def test_a_rebuild_among_concurrent_settlements_loses_nothing(
    container: Container, account: AccountScope
) -> None:
    """On PostgreSQL the rebuild locks the table: a settlement committing between its delete and
    its insert would otherwise be counted twice or fail on the key."""
    ctx = _ctx(account)

    async def settle(i: int) -> None:
        await _call(container, ctx, latency_ms=i)

    async def rebuild() -> None:
        for _ in range(3):
            await container.ledger.rebuild_rollup(account_ids=[account.id])
            await asyncio.sleep(0.01)

    await asyncio.gather(rebuild(), *(settle(i) for i in range(40)))
    assert await container.ledger.verify_rollup(account_ids=[account.id]) == []
    [row] = await _rollup(container, account)
    assert row.requests == 40


async def test_settlements_wait_while_a_rebuild_is_under_way(
    container: Container, account: AccountScope
) -> None:
    """The rebuild holds writers off the rollup until it commits (PostgreSQL: its table lock;
    SQLite: the one writer): a settlement of a key the rebuild has not seen waits for it."""
    ctx = _ctx(account, model="new-model")
    row_id, reservation = await container.ledger.open(ctx)
    async with container.uow(scope=ANYONE) as u:  # left without a commit: rolled back
        await RollupRepository(u).rebuild([account.id])
        settling = asyncio.create_task(
            container.ledger.finish(
                ctx,
                row_id,
                status="complete",
                usage=TokenUsage(input_tokens=1),
                latency_ms=1,
                reservation=reservation,
            )
        )
        await asyncio.sleep(0.3)
        assert not settling.done()
    await asyncio.wait_for(settling, 10)
    assert await container.ledger.verify_rollup(account_ids=[account.id]) == []


async def test_verify_reads_one_snapshot(
    container: Container, account: AccountScope, backend: str
) -> None:
    """A settlement committed while verify reads is invisible to both of its reads."""
    await _call(container, _ctx(account))
    async with container.uow(scope=ANYONE, write=False) as u:
        repo = RollupRepository(u)
        await repo.snapshot()
        if backend == "postgres":
            level = (await u.session.execute(text("SHOW transaction_isolation"))).scalar_one()
            assert level == "repeatable read"
        before = await repo.stored([account.id])
        await _call(container, _ctx(account))  # its own unit of work, committed
        assert await repo.stored([account.id]) == before
        assert await repo.from_ledger([account.id]) == before
    [row] = await _rollup(container, account)
    assert row.requests == 2


@pytest.fixture(params=BACKENDS)
async def off_utc(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Container]:
    """A fresh database whose sessions are not in UTC (PostgreSQL: UTC+14 by default)."""
    async with fresh_database(request.param, tmp_path) as url:
        if request.param == "postgres":
            assert PG_ADMIN_URL
            admin = make_url(PG_ADMIN_URL).set(drivername="postgresql")
            conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
            try:
                name = make_url(url).database
                await conn.execute(
                    f"ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Kiritimati'"
                )
            finally:
                await conn.close()
        container = await build_container(make_settings(url))
        try:
            yield container
        finally:
            await container.aclose()


async def test_a_rows_day_is_its_utc_day_in_python_and_in_sql(off_utc: Container) -> None:
    container = off_utc
    [account] = await _accounts(container, 1)
    ctx = _ctx(account)
    owner = await container.ledger.lease.ensure()
    day = date(2026, 3, 1)
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    times = [midnight - timedelta(milliseconds=100), midnight]  # 23:59:59.9, then 00:00

    async def add(u: UnitOfWork) -> list[uuid.UUID]:
        ids = []
        for created_at in times:
            row = LlmRequest(
                id=uuid.uuid4(),
                owner_id=owner,
                account_slug=account.slug,
                agent_slug="bot",
                run_id=ctx.run_id,
                kind="chat",
                provider="fake",
                model="fake-model",
                status="pending",
                created_at=created_at,
                deadline_at=created_at + timedelta(days=1),
            )
            u.session.add(row)
            ids.append(row.id)
        return ids

    for row_id in await container.uow.run(add, scope=account):  # the Python path settles them
        await container.ledger.finish(
            ctx, row_id, status="complete", usage=TokenUsage(input_tokens=1), latency_ms=5
        )
    window = {"since": day - timedelta(days=1), "until": day + timedelta(days=3)}
    settled = [(r.day, r.requests) for r in await container.ledger.rollup(account, **window)]
    assert settled == [(day, 1), (day + timedelta(days=1), 1)]
    assert await container.ledger.verify_rollup() == []  # the SQL path agrees
    assert await container.ledger.rebuild_rollup() == 2
    rebuilt = [(r.day, r.requests) for r in await container.ledger.rollup(account, **window)]
    assert rebuilt == settled
    groups, _ = await container.ledger.usage(account, LedgerFilters(), "day")
    assert [g.group for g in groups] == [day.isoformat(), (day + timedelta(days=1)).isoformat()]
    if container.uow.dialect == "postgresql":  # the session is not in UTC: a plain cast errs
        async with container.uow(scope=account, write=False) as u:
            plain = await u.session.execute(
                text("SELECT created_at::date FROM llm_requests ORDER BY created_at")
            )
            assert [r[0] for r in plain] == [day + timedelta(days=1)] * 2


@pytest.mark.parametrize("scoped", [True, False])
async def test_rollup_reads_use_an_index(
    container: Container, account: AccountScope, scoped: bool
) -> None:
    """One account's days: the primary key's range, already in order; every account's days:
    the day index. Never a scan of the table."""
    since, until = _days()
    async with container.uow(scope=account if scoped else ANYONE, write=False) as u:
        plan = await _plan(u, RollupRepository(u).rows_statement(since=since, until=until))
    if u.dialect == "postgresql":
        assert "Seq Scan" not in plan, plan
        assert ("pk_usage_daily" if scoped else "ix_usage_daily_day") in plan, plan
        if scoped:
            assert "Sort" not in plan, plan
        return
    assert "SCAN usage_daily" not in plan, plan
    if scoped:
        assert "SEARCH usage_daily USING INDEX sqlite_autoindex_usage_daily_1" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert "SEARCH usage_daily USING INDEX ix_usage_daily_day" in plan, plan


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0008_rolls_up_the_rows_already_in_the_ledger(
    backend: str, tmp_path: Path
) -> None:
    """Down to 0007, ledger rows of every kind written, up again: the backfill equals the
    ledger's aggregation (``verify``), pending rows left out."""
    async with fresh_database(backend, tmp_path) as url:
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0007")
        container = await build_container(make_settings(url))
        try:
            [account] = await _accounts(container, 1)
            midnight = datetime(2026, 3, 2, tzinfo=UTC)
            kinds = [
                ("complete", None, "reported", 40, "bot", midnight - timedelta(milliseconds=100)),
                ("complete", None, "reported", 70_000, "bot", midnight),
                ("error", "permanent", "estimated", 900, None, midnight),
                ("cancelled", None, "partial", 30, "bot", midnight),
                ("interrupted", "transient", "estimated", None, "bot", midnight),
                ("pending", None, "estimated", None, "bot", midnight),
            ]

            async def add(u: UnitOfWork) -> None:
                for status, error_class, source, latency, agent, created_at in kinds:
                    u.session.add(
                        LlmRequest(
                            id=uuid.uuid4(),
                            account_slug=account.slug,
                            agent_slug=agent,
                            run_id=uuid.uuid4(),
                            kind="chat",
                            provider="fake",
                            model="fake-model",
                            status=status,
                            usage_source=source,
                            input_tokens=10,
                            output_tokens=2,
                            cost_nano_usd=123,
                            priced=status != "error",
                            latency_ms=latency,
                            error_class=error_class,
                            created_at=created_at,
                            deadline_at=created_at,
                        )
                    )

            await container.uow.run(add, scope=account)
            await asyncio.to_thread(upgrade, url)
            assert await container.ledger.verify_rollup() == []
            rows = await container.ledger.rollup(
                account, since=date(2026, 3, 1), until=date(2026, 3, 3)
            )
            assert sum(r.requests for r in rows) == len(kinds) - 1  # not the pending one
            assert {r.day for r in rows} == {date(2026, 3, 1), date(2026, 3, 2)}
        finally:
            await container.aclose()
