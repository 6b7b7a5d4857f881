"""Admission at the door: at most ``active`` runs execute at once in this process; up to
``queued`` more wait for a place (first come, first served), each at most ``wait_s``. A request
beyond that is refused with 503 ``SERVER_BUSY`` and ``Retry-After`` before anything is written
or any provider is called — so under a burst the database's single writer (SQLite) is never
asked for more than it can do, and no paid-for turn fails afterwards on contention."""

from __future__ import annotations

import asyncio

from switchboard.errors import ServerBusy


class RunGate:
    def __init__(self, *, active: int, queued: int, wait_s: float) -> None:
        self.active = active
        self.queued = queued
        self.wait_s = wait_s
        self._places = asyncio.Semaphore(active)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    async def enter(self) -> None:
        """Take a place, waiting in the queue if need be; ``ServerBusy`` if the queue is full
        or the wait runs out. Pair with :meth:`leave`."""
        if self._places.locked() and self._waiting >= self.queued:
            raise ServerBusy(
                f"{self._waiting} runs are already waiting to start; retry later",
                retry_after_s=1.0,
            )
        self._waiting += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await self._places.acquire()
        except TimeoutError:
            raise ServerBusy(
                f"no place to start a run within {self.wait_s:g} s; retry later",
                retry_after_s=1.0,
            ) from None
        finally:
            self._waiting -= 1

    def leave(self) -> None:
        self._places.release()
