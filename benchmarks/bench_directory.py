"""Directory import and search at scale: 100 000 synthetic practitioners.

* import: a JSON Lines file through the CLI's path (read + validate, then one transaction);
* search: text + filter queries through ``DirectoryService.search`` (unit of work, config,
  filters, ranking, loading the page), p50/p99 over a fixed query set. Baseline in the same
  run: the same ranked SQL statement executed directly on the driver, without Switchboard;
* with --semantic: a smaller semantic directory (embedding at import, hybrid queries).

    .venv/bin/python benchmarks/bench_directory.py [--entries 100000] [--postgres URL]
        [--semantic 5000]

Bounded: a fixed number of entries and queries; fresh databases, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from benchmarks.scratch_db import scratch_postgres
from sqlalchemy.engine import make_url
from tests.directories import set_directories

from switchboard.bootstrap import Container, build_container
from switchboard.db.migrate import upgrade
from switchboard.db.uow import AccountScope
from switchboard.directory.files import parse_entries
from switchboard.directory.repository import DirectoryRepository
from switchboard.directory.search import parse_filters, query_terms
from switchboard.directory.synthetic import (
    CITIES,
    INSURANCE,
    LANGUAGES,
    PRACTITIONERS,
    SPECIALTIES,
    practitioners,
)
from switchboard.settings import Settings

QUERIES = 400


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def query_set(seed: int = 3) -> list[tuple[str, dict[str, list[str]]]]:
    """Text + filter queries as a front desk would ask them."""
    rng = random.Random(seed)  # noqa: S311 - a fixed query set, not security
    words = [title for title, _ in SPECIALTIES.values()] + list(SPECIALTIES)
    queries = []
    for _ in range(QUERIES):
        filters: dict[str, list[str]] = {"city": [rng.choice(CITIES)]}
        if rng.random() < 0.6:
            filters["insurance"] = [rng.choice(INSURANCE)]
        if rng.random() < 0.3:
            filters["languages"] = [rng.choice(LANGUAGES)]
        if rng.random() < 0.3:
            low = rng.randint(1, 20)
            filters["years_experience"] = [f"{low}..{low + 15}"]
        if rng.random() < 0.3:
            filters["accepting_new_patients"] = ["true"]
        text = rng.choice(words)
        if rng.random() < 0.3:
            text += " " + rng.choice(["heart", "skin", "children", "pain", "cancer", "diabetes"])
        queries.append((text, filters))
    return queries


async def timed(step: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bench(url: str, entries: int, semantic: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, database_url=url, embedder="auto" if semantic else "none")  # type: ignore[call-arg]
    container = await build_container(settings)
    results: dict[str, Any] = {}
    try:
        account = await container.tenancy.create_account(slug="bench", name="Bench")
        scope = AccountScope(account.id, account.slug)
        plain = {**PRACTITIONERS, "semantic": False}
        await set_directories(container, scope, {"practitioners": plain, "semantic": PRACTITIONERS})
        results.update(await bench_import(container, scope, "practitioners", entries))
        results.update(await bench_search(container, scope, url))
        if semantic:
            results.update(await bench_semantic(container, scope, semantic))
    finally:
        await container.aclose()
    return results


async def bench_import(
    container: Container, scope: AccountScope, directory: str, entries: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "practitioners.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for record in practitioners(entries):
                handle.write(json.dumps(record) + "\n")
        config = await container.directories.schema(scope, directory)
        started = time.perf_counter()

        def read() -> Any:
            with path.open(encoding="utf-8") as handle:
                return parse_entries(config, directory, handle, "jsonl")

        rows = await asyncio.to_thread(read)
        validated = time.perf_counter()
        result = await container.directories.import_entries(scope, directory, config, rows)
        done = time.perf_counter()
    assert result.total == entries
    return {
        "entries": entries,
        "import_s": done - started,
        "validate_s": validated - started,
        "write_s": done - validated,
    }


async def bench_search(container: Container, scope: AccountScope, url: str) -> dict[str, Any]:
    queries = query_set()
    config = await container.directories.schema(scope, "practitioners")
    hits = 0
    for text, filters in queries[:50]:  # warm-up: caches, prepared statements
        await container.directories.search(scope, "practitioners", query=text, filters=filters)
    samples: list[float] = []
    for text, filters in queries:
        started = time.perf_counter()
        page = await container.directories.search(
            scope, "practitioners", query=text, filters=filters, limit=10
        )
        samples.append((time.perf_counter() - started) * 1000)
        hits += len(page.hits)
    p50, p99 = percentiles(samples)

    # Baseline: the same ranked statement, executed on the bare driver.
    statements = []
    async with container.uow(scope=scope, write=False) as u:
        repository = DirectoryRepository(u, "practitioners")
        dialect = u.session.bind.dialect
        for text, filters in queries:
            statement = repository.search_statement(
                query_terms(text), parse_filters(config, filters)
            ).limit(11)
            compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            statements.append(str(compiled))
    baseline = await raw_latencies(url, statements)
    b50, b99 = percentiles(baseline)
    return {
        "search_p50_ms": p50,
        "search_p99_ms": p99,
        "raw_sql_p50_ms": b50,
        "raw_sql_p99_ms": b99,
        "mean_hits": hits / len(queries),
    }


async def raw_latencies(url: str, statements: list[str]) -> list[float]:
    samples: list[float] = []
    if url.startswith("sqlite"):
        path = make_url(url).database
        assert path

        def run() -> None:
            connection = sqlite3.connect(path)
            try:
                for sql in statements[:50]:
                    connection.execute(sql).fetchall()
                for sql in statements:
                    started = time.perf_counter()
                    connection.execute(sql).fetchall()
                    samples.append((time.perf_counter() - started) * 1000)
            finally:
                connection.close()

        await asyncio.to_thread(run)
        return samples
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        for sql in statements[:50]:
            await connection.fetch(sql)
        for sql in statements:
            started = time.perf_counter()
            await connection.fetch(sql)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return samples


async def bench_semantic(container: Container, scope: AccountScope, entries: int) -> dict[str, Any]:
    imported = await bench_import(container, scope, "semantic", entries)
    queries = ["heart doctor", "someone for my child's fever", "my knee hurts after running"]
    await container.directories.search(scope, "semantic", query=queries[0])  # warm-up

    async def hybrid() -> None:
        for text in queries:
            await container.directories.search(
                scope, "semantic", query=text, filters={"city": ["Seattle"]}
            )

    samples = [s / len(queries) for s in await timed(hybrid, 40)]
    p50, p99 = percentiles(samples)
    return {
        "semantic_entries": entries,
        "semantic_import_s": imported["import_s"],
        "hybrid_p50_ms": p50,
        "hybrid_p99_ms": p99,
    }


def report(backend: str, r: dict[str, Any]) -> None:
    print(
        f"{backend:10} import {r['entries']} entries: {r['import_s']:.1f} s "
        f"(validate {r['validate_s']:.1f} s, write {r['write_s']:.1f} s, "
        f"{r['entries'] / r['import_s']:.0f} entries/s)"
    )
    print(
        f"{backend:10} text+filter search: p50 {r['search_p50_ms']:.2f} ms, "
        f"p99 {r['search_p99_ms']:.2f} ms ({QUERIES} queries, {r['mean_hits']:.1f} hits/query); "
        f"raw SQL baseline p50 {r['raw_sql_p50_ms']:.2f} ms, p99 {r['raw_sql_p99_ms']:.2f} ms"
    )
    if "semantic_entries" in r:
        print(
            f"{backend:10} semantic: import {r['semantic_entries']} entries with embeddings "
            f"{r['semantic_import_s']:.1f} s; hybrid text+vector search p50 "
            f"{r['hybrid_p50_ms']:.1f} ms, p99 {r['hybrid_p99_ms']:.1f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--postgres", help="admin URL: also measure on PostgreSQL")
    parser.add_argument(
        "--semantic", type=int, default=0, help="also import N entries with embeddings"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await asyncio.to_thread(upgrade, url)
        report("SQLite", await bench(url, args.entries, args.semantic))
    if args.postgres:
        async with scratch_postgres(args.postgres, "bench_directory", migrate=True) as url:
            report("PostgreSQL", await bench(url, args.entries, args.semantic))


if __name__ == "__main__":
    asyncio.run(main())
