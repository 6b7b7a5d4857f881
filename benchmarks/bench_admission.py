"""Admission-path overhead with no contention, in microseconds per provider call.

* limiter: ``admit`` + release of a slot with rpm/tpm limits — in process, and through Redis
  (baseline in the same run: entering an empty async context manager);
* budget: the ledger's open + settle units of work with a budget to reserve against, versus the
  same without any budget (the reservation rides in the same units of work).

    .venv/bin/python benchmarks/bench_admission.py [--redis redis://127.0.0.1:6379/0]

Bounded: a fixed number of iterations per measurement, on a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switchboard.bootstrap import build_container
from switchboard.db.migrate import upgrade
from switchboard.db.uow import AccountScope
from switchboard.ledger.service import CallContext, TokenUsage
from switchboard.settings import Settings
from switchboard.traffic.limiter import InProcessLimiter
from switchboard.traffic.limits import Admission, LimitSpec

N = 2000


async def timed(n: int, step: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * len(samples))]


@asynccontextmanager
async def nothing() -> AsyncIterator[None]:
    yield


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="also measure the Redis limiter")
    args = parser.parse_args()
    admission = Admission(
        specs=(LimitSpec("bench", 5, 1_000_000, 1_000_000_000),), queue_timeout_s=5
    )
    rows = []

    async def empty() -> None:
        async with nothing():
            pass

    rows.append(("baseline: empty async context manager", *await timed(N, empty)))
    limiter = InProcessLimiter()

    async def local() -> None:
        async with limiter.admit(admission, tokens=100):
            pass

    rows.append(("in-process slot + rpm/tpm", *await timed(N, local)))
    if args.redis:
        from switchboard.traffic.redis_limiter import RedisLimiter

        shared = RedisLimiter(args.redis)
        redis_admission = Admission(
            specs=(LimitSpec(f"bench-{uuid.uuid4().hex[:6]}", 5, None, None),),
            queue_timeout_s=5,
        )
        rated = Admission(
            specs=(LimitSpec(f"bench-{uuid.uuid4().hex[:6]}", 5, 10**9, 10**12),), queue_timeout_s=5
        )

        async def remote() -> None:
            async with shared.admit(redis_admission, tokens=100):
                pass

        async def remote_rated() -> None:
            async with shared.admit(rated, tokens=100):
                pass

        rows.append(("Redis slot (lease)", *await timed(N // 2, remote)))
        rows.append(("Redis slot + rpm/tpm windows", *await timed(N // 4, remote_rated)))
        await shared.aclose()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)
        container = await build_container(Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
        try:
            results = {}
            for with_budget in (False, True):
                account = await container.tenancy.create_account(
                    slug=f"b{uuid.uuid4().hex[:8]}", name="bench"
                )
                scope = AccountScope(account.id, account.slug)
                if with_budget:
                    await container.budgets.put(
                        scope, agent=None, period="month", limit_nano_usd=10**15
                    )
                ctx = CallContext(scope=scope, run_id=uuid.uuid4(), provider="p", model="demo")

                async def call(ctx: CallContext = ctx) -> None:
                    row, reservation = await container.ledger.open(ctx, budget_hold_nano_usd=1000)
                    await container.ledger.finish(
                        ctx,
                        row,
                        status="complete",
                        usage=TokenUsage(10, 10),
                        latency_ms=1,
                        reservation=reservation,
                    )

                results[with_budget] = await timed(N // 4, call)
            rows.append(("ledger open + settle, no budget (baseline)", *results[False]))
            rows.append(("ledger open + settle, with budget reservation", *results[True]))
        finally:
            await container.aclose()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| measurement | p50 µs | p99 µs |\n| --- | --- | --- |")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.0f} | {p99:.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
