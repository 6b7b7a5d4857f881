"""The sweeper: pending rows of dead processes become ``interrupted``, at start-up and then every
``interval_s`` — never a live process's call, however long it runs."""

from __future__ import annotations

import asyncio
import logging

from switchboard.ledger.service import LedgerService
from switchboard.periodic import every

log = logging.getLogger("switchboard.ledger")


class Sweeper:
    """Runs :meth:`LedgerService.sweep` at start-up and then every ``interval_s``."""

    def __init__(self, ledger: LedgerService, *, interval_s: float) -> None:
        self._ledger = ledger
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._sweep()
        self._task = asyncio.create_task(self._loop(), name="ledger-sweeper")

    async def _loop(self) -> None:
        await every(self._interval_s, self._sweep, what="ledger sweep", log=log)

    async def _sweep(self) -> None:
        lease = self._ledger.lease
        if lease.registered:
            # After a stall longer than the lease (a blocked loop, a long lock wait) this
            # process's own lease looks expired: renew it first, so the sweep never takes
            # this process's live calls for a dead one's.
            await lease.renew()
        swept = await self._ledger.sweep()
        if swept:
            log.warning("marked %d ledger rows of dead processes interrupted", swept)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
