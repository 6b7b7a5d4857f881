"""The per-day usage rollup against the ledger scan it replaces, over a large ledger.

Seeds ``--rows`` final ledger rows (5 accounts x 5 agents x 3 models, spread over 90 days, a
mix of statuses, usage sources and latencies) into a fresh database with Core executemany in
batches, runs ``rebuild_rollup`` (and ``verify_rollup``), then times, median of ``--reps``:

* ``container.ledger.rollup(None, since, until)`` — 30 days of every account's rollup rows;
* ``container.ledger.rollup(scope, since, until)`` — 30 days of one account's;
* ``container.ledger.usage(scope, LedgerFilters(since, until), "day")`` — the existing report,
  which scans one account's ledger rows for the same 30 days;
* the console's pages over that ledger, served in-process (ASGI, an operator's session): the
  overview of every account and of one, the accounts page, one account's ledger (first page,
  and filtered by status and model).

    .venv/bin/python benchmarks/bench_rollup.py [--rows 1000000] [--reps 20] [--postgres URL]

Bounded: a fixed number of rows and repetitions; fresh databases (an SQLite file in a temporary
folder; with --postgres, a database of its own, created and dropped), nothing left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from asgi_lifespan import LifespanManager
from benchmarks.scratch_db import scratch_postgres
from pydantic import SecretStr
from sqlalchemy import insert, text

from switchboard.app import create_app
from switchboard.bootstrap import Container, build_container
from switchboard.db.migrate import upgrade
from switchboard.db.uow import AccountScope
from switchboard.ledger.models import LlmRequest
from switchboard.ledger.schemas import LedgerFilters
from switchboard.settings import Settings
from switchboard.ui.session import COOKIE, SessionCodec

ACCOUNTS, AGENTS, DAYS = 5, 5, 90
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku"), ("fake", "fake-model"))
BATCH = 10_000
WINDOW_DAYS = 30


def ledger_rows(
    accounts: list[AccountScope], n: int, *, end: datetime, seed: int = 7
) -> Iterator[list[dict[str, Any]]]:
    """``n`` final ledger rows in batches of ``BATCH``: created uniformly over the ``DAYS`` days
    before ``end``; 90 % complete, 4 % error, 3 % cancelled, 3 % interrupted."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    span_s = DAYS * 86_400
    start = end - timedelta(seconds=span_s)
    batch: list[dict[str, Any]] = []
    for _ in range(n):
        account = accounts[rng.randrange(ACCOUNTS)]
        provider, model = MODELS[rng.randrange(len(MODELS))]
        created = start + timedelta(seconds=rng.random() * span_s)
        draw = rng.random()
        status, error_code, error_class, source, latency = "complete", None, None, "reported", 0
        if draw < 0.04:
            status, error_code, error_class = "error", "PROVIDER_UNAVAILABLE", "transient"
            source = "estimated"
        elif draw < 0.07:
            status, error_code, source = "cancelled", "CANCELLED", "partial"
        elif draw < 0.10:
            status, error_code, error_class, source = (
                "interrupted",
                "INTERRUPTED",
                "transient",
                "estimated",
            )
        if status != "interrupted":
            latency = int(rng.lognormvariate(6.5, 0.9))  # median ≈ 665 ms, a long tail
        input_tokens = rng.randint(50, 4000)
        output_tokens = 0 if source == "estimated" else rng.randint(1, 800)
        batch.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "account_id": account.id,
                "account_slug": account.slug,
                "agent_slug": f"agent-{rng.randrange(AGENTS)}",
                "run_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "kind": "chat",
                "provider": provider,
                "model": model,
                "status": status,
                "usage_source": source,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cached_tokens": 0,
                "cost_nano_usd": input_tokens * 150 + output_tokens * 600,
                "priced": True,
                "latency_ms": None if status == "interrupted" else latency,
                "error_code": error_code,
                "error_class": error_class,
                "budget_hold_nano_usd": 0,
                "created_at": created,
                "deadline_at": created + timedelta(seconds=120),
                "finished_at": created + timedelta(milliseconds=latency),
            }
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def seed(container: Container, accounts: list[AccountScope], n: int, end: datetime) -> None:
    """Core executemany on the engine (a seeder, not a Switchboard write path), then ANALYZE."""
    statement = insert(LlmRequest.__table__)
    for batch in ledger_rows(accounts, n, end=end):
        async with container.engine.begin() as connection:
            await connection.execute(statement, batch)
    async with container.engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def timed(step: Callable[[], Awaitable[Any]], reps: int) -> tuple[float, float]:
    """The median and the fastest wall time of ``step`` in ms (the fastest: a run without a
    garbage collection of the process's heap in it)."""
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples)


async def bench(url: str, rows: int, reps: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, database_url=url, embedder="none")  # type: ignore[call-arg]
    container = await build_container(settings)
    result: dict[str, Any] = {"rows": rows}
    try:
        accounts = []
        for i in range(ACCOUNTS):
            made = await container.tenancy.create_account(slug=f"bench-{i}", name=f"Bench {i}")
            accounts.append(AccountScope(made.id, made.slug))
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        started = time.perf_counter()
        await seed(container, accounts, rows, end)
        result["seed_s"] = time.perf_counter() - started
        started = time.perf_counter()
        result["rollup_rows"] = await container.ledger.rebuild_rollup()
        result["rebuild_s"] = time.perf_counter() - started
        started = time.perf_counter()
        mismatches = await container.ledger.verify_rollup()
        result["verify_s"] = time.perf_counter() - started
        assert mismatches == [], mismatches[:3]

        until = end.date()
        since = until - timedelta(days=WINDOW_DAYS)
        one = accounts[0]
        filters = LedgerFilters(
            since=end - timedelta(days=WINDOW_DAYS), until=end
        )  # the same 30 UTC days
        every = await container.ledger.rollup(None, since=since, until=until)
        mine = await container.ledger.rollup(one, since=since, until=until)
        groups, _ = await container.ledger.usage(one, filters, "day")
        assert len(groups) == WINDOW_DAYS, len(groups)
        by_day: dict[str, int] = {}
        for row in mine:
            by_day[row.day.isoformat()] = by_day.get(row.day.isoformat(), 0) + row.requests
        assert by_day == {g.group: g.requests for g in groups}  # the same numbers, both ways
        result["window_rows_all"] = len(every)
        result["window_rows_one"] = len(mine)
        result["rollup_all_ms"] = await timed(
            lambda: container.ledger.rollup(None, since=since, until=until), reps
        )
        result["rollup_one_ms"] = await timed(
            lambda: container.ledger.rollup(one, since=since, until=until), reps
        )
        result["usage_one_ms"] = await timed(
            lambda: container.ledger.usage(one, filters, "day"), reps
        )
    finally:
        await container.aclose()
    return result


PAGES = {
    "overview, every account": "/ui/?days=30",
    "overview, one account": "/ui/?days=30&account=bench-0",
    "accounts (month to date)": "/ui/accounts",
    "ledger, first page": "/ui/accounts/bench-0/ledger",
    "ledger, status + model filter": "/ui/accounts/bench-0/ledger?status=error&model=fake-model",
}


async def pages(url: str, reps: int) -> dict[str, tuple[float, float]]:
    """The console's pages over the seeded database, served in-process with an operator's
    session: median / fastest ms per page load (render included)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=url, embedder="none", admin_key=SecretStr("bench-admin")
    )
    app = create_app(settings)
    cookie, _ = SessionCodec(settings).issue_admin()
    timings: dict[str, tuple[float, float]] = {}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", cookies={COOKIE: cookie}
        ) as http:
            for name, path in PAGES.items():

                async def load(path: str = path) -> None:
                    response = await http.get(path)
                    assert response.status_code == 200, (path, response.text[:300])

                timings[name] = await timed(load, reps)
    return timings


def report_pages(backend: str, timings: dict[str, tuple[float, float]]) -> None:
    print(f"\n| console page ({backend}) | median / min ms |\n| --- | --- |")
    for name, timing in timings.items():
        print(f"| {name} | {_ms(timing)} |", flush=True)
    print(flush=True)


HEADER = (
    "| backend | ledger rows | seed s | rebuild s (rollup rows) | verify s "
    "| rollup 30 d, all accounts: rows, median / min ms "
    "| rollup 30 d, one account: rows, median / min ms "
    "| usage(day) scan 30 d, one account: median / min ms | scan / rollup (one account, "
    "medians) |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _ms(timing: tuple[float, float]) -> str:
    median, fastest = timing
    return f"**{median:.1f}** / {fastest:.1f}"


def report(backend: str, r: dict[str, Any]) -> None:
    print(
        f"| {backend} | {r['rows']:,} | {r['seed_s']:.1f} | {r['rebuild_s']:.1f} "
        f"({r['rollup_rows']:,}) | {r['verify_s']:.1f} "
        f"| {r['window_rows_all']:,}: {_ms(r['rollup_all_ms'])} "
        f"| {r['window_rows_one']:,}: {_ms(r['rollup_one_ms'])} "
        f"| {_ms(r['usage_one_ms'])} "
        f"| {r['usage_one_ms'][0] / r['rollup_one_ms'][0]:.0f}x |",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to seed")
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions per query")
    parser.add_argument("--postgres", help="admin URL: also measure on PostgreSQL")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f"; {ACCOUNTS} accounts x {AGENTS} agents x {len(MODELS)} models x {DAYS} days\n"
    )
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await asyncio.to_thread(upgrade, url)
        report("SQLite", await bench(url, args.rows, args.reps))
        report_pages("SQLite", await pages(url, args.reps))
    if args.postgres:
        async with scratch_postgres(args.postgres, "bench_rollup", migrate=True) as url:
            report("PostgreSQL", await bench(url, args.rows, args.reps))
            report_pages("PostgreSQL", await pages(url, args.reps))


if __name__ == "__main__":
    asyncio.run(main())
