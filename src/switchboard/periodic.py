"""Background work repeated on a timer, which no single failure stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float, step: Callable[[], Awaitable[object]], *, what: str, log: logging.Logger
) -> None:
    """Run ``step`` every ``interval_s`` until cancelled; a failure is logged, never fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception as exc:  # any failure: the loop must outlive it
            log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
