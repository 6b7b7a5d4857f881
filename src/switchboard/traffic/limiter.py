"""Concurrency slots and rate limits, in process. Waiters queue in FIFO order (asyncio's
``Semaphore`` and ``Lock`` wake them first come, first served) up to the queue timeout; a slot
is released in a ``finally`` and so survives errors, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.errors import ProviderBusy
from switchboard.traffic.limits import Admission, LimitSpec


class Limiter(Protocol):
    def admit(self, admission: Admission, *, tokens: int) -> AbstractAsyncContextManager[None]: ...

    def in_use(self, key: str) -> int: ...

    def queued(self, key: str) -> int: ...

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """label → (slots in use, callers queued), as this process sees them."""
        ...

    def report(self) -> list[LimitUse]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LimitUse:
    """One declared limit (a provider, or a provider's model) as this process sees it: slots in
    use and callers queued; rpm/tpm used over the last minute where this process keeps the
    buckets (None when they are shared: in Redis or the database)."""

    label: str
    max_concurrency: int | None
    in_use: int
    queued: int
    rpm: int | None
    rpm_used: int | None
    tpm: int | None
    tpm_used: int | None


def busy(key: str, waited_s: float) -> ProviderBusy:
    return ProviderBusy(
        f"provider '{key}' is at its limit; waited {waited_s:.1f} s for capacity",
        retry_after_s=max(1.0, waited_s / 2),
    )


@dataclass(slots=True)
class _Bucket:
    """A token bucket refilled continuously: ``capacity`` per minute."""

    capacity: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def wait_for(self, amount: float, now: float) -> float:
        self.refill(now)
        needed = min(amount, self.capacity) - self.tokens
        return 0.0 if needed <= 0 else needed * 60 / self.capacity


class LimiterBase:
    """What every limiter shares: the admission order (every slot, then every rate limit, one
    deadline for all) and the per-process counts for /metrics."""

    def __init__(self) -> None:
        self._in_use: dict[str, int] = {}
        self._queued: dict[str, int] = {}
        self._labels: dict[str, str | None] = {}  # key → its /metrics label
        self._specs: dict[str, LimitSpec] = {}  # key → its limits (the console's limits page)

    def in_use(self, key: str) -> int:
        return self._in_use.get(key, 0)

    def queued(self, key: str) -> int:
        return self._queued.get(key, 0)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """label → (in use, queued), summed over the keys that share a label (two declarations
        of one provider name); unlabelled keys (per-account shares) are left out."""
        totals: dict[str, tuple[int, int]] = {}
        for key in sorted({*self._in_use, *self._queued}):
            label = self._labels.get(key)
            if label is not None:
                in_use, queued = totals.get(label, (0, 0))
                totals[label] = (in_use + self.in_use(key), queued + self.queued(key))
        return totals

    def report(self) -> list[LimitUse]:
        """Every labelled limit this process has admitted calls under, by label."""
        found: list[LimitUse] = []
        for key, spec in sorted(self._specs.items(), key=lambda kv: (kv[1].label or "", kv[0])):
            if spec.label is None:
                continue
            found.append(
                LimitUse(
                    label=spec.label,
                    max_concurrency=spec.max_concurrency,
                    in_use=self.in_use(key),
                    queued=self.queued(key),
                    rpm=spec.rpm,
                    rpm_used=self._rate_used(key, "rpm") if spec.rpm else None,
                    tpm=spec.tpm,
                    tpm_used=self._rate_used(key, "tpm") if spec.tpm else None,
                )
            )
        return found

    def _rate_used(self, key: str, kind: str) -> int | None:
        return None

    @asynccontextmanager
    async def admit(self, admission: Admission, *, tokens: int) -> AsyncIterator[None]:
        started = time.monotonic()
        deadline = started + admission.queue_timeout_s
        async with AsyncExitStack() as stack:
            for spec in admission.specs:
                self._labels[spec.key] = spec.label
                self._specs[spec.key] = spec
                if spec.max_concurrency is not None:
                    await stack.enter_async_context(
                        self._slot(spec, spec.max_concurrency, deadline, started)
                    )
            for spec in admission.specs:
                await self._rate(spec, tokens, deadline, started)
            yield

    def _slot(
        self, spec: LimitSpec, limit: int, deadline: float, started: float
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def _rate(self, spec: LimitSpec, tokens: int, deadline: float, started: float) -> None:
        raise NotImplementedError


class SharedLimiterBase(LimiterBase):
    """What the limiters shared between processes (Redis, the database) have in common: a slot
    is a lease taken by polling — the head of this process's FIFO queue per key tries, with
    jitter, until the deadline — kept alive while held and released even if the holder is
    cancelled."""

    def __init__(self, *, poll_s: float) -> None:
        super().__init__()
        self._poll_s = poll_s
        self._fifo: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def _leased(
        self,
        spec: LimitSpec,
        deadline: float,
        started: float,
        *,
        acquire: Callable[[bool], Awaitable[bool]],
        keep_alive: Callable[[], Coroutine[Any, Any, None]],
        release: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[None]:
        """Hold a lease of ``spec``'s key: ``acquire(first_try)`` until it returns True (or
        PROVIDER_BUSY at the deadline), ``keep_alive()`` in a task while it is held, then
        ``release()`` shielded from the holder's cancellation."""
        self._queued[spec.key] = self.queued(spec.key) + 1
        try:
            async with self._fifo.setdefault(spec.key, asyncio.Lock()):
                first = True
                while not await acquire(first):
                    first = False
                    now = time.monotonic()
                    if now >= deadline:
                        raise busy(spec.key, now - started)
                    pause = self._poll_s * (0.5 + random.random())  # noqa: S311 - jitter
                    await asyncio.sleep(min(pause, max(deadline - now, 0.001)))
        finally:
            self._queued[spec.key] -= 1
        self._in_use[spec.key] = self.in_use(spec.key) + 1
        renewer = asyncio.create_task(keep_alive(), name="limiter-lease")
        try:
            yield
        finally:
            self._in_use[spec.key] -= 1
            renewer.cancel()
            await asyncio.shield(asyncio.ensure_future(release()))  # even if we are cancelled

    async def _windowed(
        self,
        spec: LimitSpec,
        deadline: float,
        started: float,
        *,
        record: Callable[[], Awaitable[float]],
    ) -> None:
        """Pass ``spec``'s rpm/tpm windows: ``record()`` either counts the call and returns 0,
        or returns the seconds until the window has room; wait that long and try again, or
        PROVIDER_BUSY when the wait would end past the deadline. FIFO per key in this process."""
        async with self._fifo.setdefault(f"rate:{spec.key}", asyncio.Lock()):
            while True:
                wait_s = await record()
                if wait_s <= 0:
                    return
                if time.monotonic() + wait_s > deadline:
                    raise busy(spec.key, time.monotonic() - started)
                await asyncio.sleep(wait_s)


class InProcessLimiter(LimiterBase):
    def __init__(self) -> None:
        super().__init__()
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._rate_locks: dict[str, asyncio.Lock] = {}

    def _semaphore(self, spec: LimitSpec, limit: int) -> asyncio.Semaphore:
        """One semaphore per key for the life of the process. A key names one declaration
        (its digest covers the limits), so a changed limit is a new key: a semaphore with
        holders is never replaced, which would let its holders and the new one's both in."""
        known = self._slots.get(spec.key)
        if known is None:
            known = (limit, asyncio.Semaphore(limit))
            self._slots[spec.key] = known
        return known[1]

    @asynccontextmanager
    async def _slot(
        self, spec: LimitSpec, limit: int, deadline: float, started: float
    ) -> AsyncIterator[None]:
        semaphore = self._semaphore(spec, limit)
        self._queued[spec.key] = self.queued(spec.key) + 1
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                await semaphore.acquire()
        except TimeoutError:
            raise busy(spec.key, time.monotonic() - started) from None
        finally:
            self._queued[spec.key] -= 1
        self._in_use[spec.key] = self.in_use(spec.key) + 1
        try:
            yield
        finally:
            self._in_use[spec.key] -= 1
            semaphore.release()

    async def _rate(self, spec: LimitSpec, tokens: int, deadline: float, started: float) -> None:
        if spec.rpm is None and spec.tpm is None:
            return
        lock = self._rate_locks.setdefault(spec.key, asyncio.Lock())
        try:
            async with asyncio.timeout_at(_loop_time(deadline)), lock:  # FIFO among waiters
                while True:
                    now = time.monotonic()
                    waits = [
                        self._bucket(spec.key, "rpm", spec.rpm).wait_for(1, now)
                        if spec.rpm
                        else 0.0,
                        self._bucket(spec.key, "tpm", spec.tpm).wait_for(tokens, now)
                        if spec.tpm
                        else 0.0,
                    ]
                    wait = max(waits)
                    if wait <= 0:
                        break
                    if now + wait > deadline:
                        raise TimeoutError
                    await asyncio.sleep(wait)
        except TimeoutError:
            raise busy(spec.key, time.monotonic() - started) from None
        if spec.rpm:
            self._bucket(spec.key, "rpm", spec.rpm).tokens -= 1
        if spec.tpm:
            self._bucket(spec.key, "tpm", spec.tpm).tokens -= min(tokens, spec.tpm)

    def _rate_used(self, key: str, kind: str) -> int | None:
        bucket = self._buckets.get((key, kind))
        if bucket is None:
            return 0
        bucket.refill(time.monotonic())
        return max(round(bucket.capacity - bucket.tokens), 0)

    def _bucket(self, key: str, kind: str, capacity: int) -> _Bucket:
        bucket = self._buckets.get((key, kind))
        if bucket is None or bucket.capacity != capacity:
            bucket = _Bucket(capacity=capacity, tokens=capacity)
            self._buckets[(key, kind)] = bucket
        return bucket

    async def aclose(self) -> None:
        return None


def _loop_time(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
