"""Rule 7 across processes without Redis: provider limits kept in the database (SQLite and
PostgreSQL). Each ``DatabaseLimiter`` below has an engine of its own, like a server process:
together they never hold more slots than the limit, never admit more calls than the rpm/tpm
window allows, take back the lease of a holder that died, and never take a live one's."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from switchboard.db.engine import create_engine
from switchboard.db.uow import UnitOfWorkFactory
from switchboard.errors import ProviderBusy
from switchboard.retry import RetryPolicy
from switchboard.settings import Settings
from switchboard.traffic.db_limiter import DatabaseLimiter
from switchboard.traffic.limits import Admission, LimitSpec


def _spec(
    key: str, limit: int | None = None, *, rpm: int | None = None, tpm: int | None = None
) -> LimitSpec:
    return LimitSpec(key, limit, rpm, tpm)


def _admission(spec: LimitSpec, timeout: float = 10) -> Admission:
    return Admission(specs=(spec,), queue_timeout_s=timeout)


@asynccontextmanager
async def _processes(
    settings: Settings, count: int, **options: float
) -> AsyncIterator[list[DatabaseLimiter]]:
    """``count`` limiters, each on an engine (and pool) of its own, as in separate processes."""
    engines = [await asyncio.to_thread(create_engine, settings) for _ in range(count)]
    retry = RetryPolicy(attempts=8, base_s=0.02, max_total_s=5)
    limiters = [
        DatabaseLimiter(UnitOfWorkFactory(engine, retry=retry, lock_timeout_s=5), **options)
        for engine in engines
    ]
    try:
        yield limiters
    finally:
        for limiter in limiters:
            await limiter.aclose()
        for engine in engines:
            await engine.dispose()


async def test_processes_together_never_hold_more_slots_than_the_limit(
    settings: Settings,
) -> None:
    limit, calls = 3, 48
    spec = _spec(f"slots-{uuid.uuid4().hex[:8]}", limit)
    holding = peak = 0
    peak_held = 0
    barrier = asyncio.Barrier(calls)
    async with _processes(settings, 4) as limiters:

        async def call(limiter: DatabaseLimiter) -> None:
            nonlocal holding, peak, peak_held
            await barrier.wait()
            async with limiter.admit(_admission(spec, timeout=60), tokens=1):
                holding += 1
                peak = max(peak, holding)
                peak_held = max(peak_held, await limiter.held(spec.key))
                await asyncio.sleep(0.005)  # the call's work (not a synchronisation)
                holding -= 1

        async with asyncio.timeout(90):
            await asyncio.gather(*(call(limiters[i % 4]) for i in range(calls)))
        left = await limiters[0].held(spec.key)
    assert peak == limit  # reached, never exceeded
    assert peak_held <= limit
    assert left == 0  # every slot released
    assert all(limiter.in_use(spec.key) == limiter.queued(spec.key) == 0 for limiter in limiters)


async def test_a_dead_holders_lease_is_taken_back(settings: Settings) -> None:
    spec = _spec(f"dead-{uuid.uuid4().hex[:8]}", 1)
    async with (
        _processes(settings, 1, lease_ttl_s=0.3) as [dead],
        _processes(settings, 1) as [alive],
    ):
        # A process took the only slot (a 0.3 s lease) and died: nobody renews or releases it.
        taken = functools.partial(dead._acquire, spec.key, "dead-member", 1)
        assert await dead._uow.run(taken)
        assert await alive.held(spec.key) == 1
        started = time.monotonic()
        async with alive.admit(_admission(spec, timeout=10), tokens=1):
            waited = time.monotonic() - started
            assert await alive.held(spec.key) == 1
        assert await alive.held(spec.key) == 0
    assert 0.1 < waited < 10  # got the slot once the dead lease expired, not before


async def test_a_live_holders_lease_is_renewed_not_taken(settings: Settings) -> None:
    spec = _spec(f"renew-{uuid.uuid4().hex[:8]}", 1)
    refused = asyncio.Event()
    holding = asyncio.Event()
    async with _processes(settings, 2, lease_ttl_s=0.3) as [holder, other]:

        async def hold() -> None:
            async with holder.admit(_admission(spec), tokens=1):
                holding.set()
                await refused.wait()  # held for longer than three lease TTLs

        task = asyncio.create_task(hold())
        try:
            await holding.wait()
            started = time.monotonic()
            with pytest.raises(ProviderBusy):
                async with other.admit(_admission(spec, timeout=1.2), tokens=1):
                    pass
            waited = time.monotonic() - started
        finally:
            refused.set()
            await task
        assert await other.held(spec.key) == 0
    assert waited >= 1.1  # waited its whole queue timeout: the lease was never taken back


async def test_released_after_an_error_and_a_cancellation(settings: Settings) -> None:
    spec = _spec(f"release-{uuid.uuid4().hex[:8]}", 1)
    async with _processes(settings, 2) as [first, second]:
        with pytest.raises(RuntimeError):
            async with first.admit(_admission(spec), tokens=1):
                raise RuntimeError("provider failed")
        assert await second.held(spec.key) == 0

        inside = asyncio.Event()

        async def held_forever() -> None:
            async with first.admit(_admission(spec), tokens=1):
                inside.set()
                await asyncio.Event().wait()

        holder = asyncio.create_task(held_forever())
        await inside.wait()
        waiter = asyncio.create_task(held_forever())  # queued behind the holder
        assert await second.held(spec.key) == 1
        waiter.cancel()
        holder.cancel()
        await asyncio.gather(holder, waiter, return_exceptions=True)
        assert await second.held(spec.key) == 0
        async with second.admit(_admission(spec, timeout=1), tokens=1):  # free again
            pass
        assert first.in_use(spec.key) == first.queued(spec.key) == 0


async def test_rpm_admits_exactly_the_limit_across_processes(settings: Settings) -> None:
    rpm, callers = 5, 30
    spec = _spec(f"rpm-{uuid.uuid4().hex[:8]}", rpm=rpm)
    barrier = asyncio.Barrier(callers)
    async with _processes(settings, 6) as limiters:

        async def call(limiter: DatabaseLimiter) -> bool:
            await barrier.wait()
            try:
                async with limiter.admit(_admission(spec, timeout=1), tokens=1):
                    return True
            except ProviderBusy:
                return False

        async with asyncio.timeout(60):
            admitted = await asyncio.gather(*(call(limiters[i % 6]) for i in range(callers)))
        # A refused caller recorded nothing: with room for one more call, one more gets in.
        async with limiters[0].admit(_admission(_spec(spec.key, rpm=rpm + 1), 1), tokens=1):
            pass
        with pytest.raises(ProviderBusy) as caught:
            async with limiters[1].admit(_admission(_spec(spec.key, rpm=rpm + 1), 1), tokens=1):
                pass
    assert sum(admitted) == rpm
    assert caught.value.retry_after_s is not None


async def test_tpm_counts_the_tokens_of_the_window(settings: Settings) -> None:
    spec = _spec(f"tpm-{uuid.uuid4().hex[:8]}", tpm=100)
    async with _processes(settings, 2) as [first, second]:
        async with first.admit(_admission(spec), tokens=60):
            pass
        with pytest.raises(ProviderBusy):
            async with second.admit(_admission(spec, timeout=0.5), tokens=60):
                pass
        async with second.admit(_admission(spec, timeout=0.5), tokens=40):  # exactly the rest
            pass


def test_the_limiter_is_chosen_by_the_settings(settings: Settings) -> None:
    from switchboard.bootstrap import build_limiter
    from switchboard.traffic.limiter import InProcessLimiter
    from switchboard.traffic.redis_limiter import RedisLimiter
    from tests.conftest import make_settings

    uow = UnitOfWorkFactory.__new__(UnitOfWorkFactory)  # never used: nothing is admitted
    url = settings.database_url
    assert isinstance(build_limiter(make_settings(url), uow=uow), InProcessLimiter)
    shared = make_settings(url, shared_limits=True)
    assert isinstance(build_limiter(shared, uow=uow), DatabaseLimiter)
    both = make_settings(url, shared_limits=True, redis_url="redis://127.0.0.1:1/0")
    assert isinstance(build_limiter(both, uow=uow), RedisLimiter)  # Redis wins when set
