"""Custom tools that tests load by import path (``tests.tools:…``), as users load their own."""

from __future__ import annotations

import asyncio

from pydantic_ai import RunContext

from switchboard.runtime.tools.context import ToolContext

# Both tools wait here for each other: they can only succeed if they run at the same time.
_barriers: dict[str, asyncio.Barrier] = {}


def reset_barrier(name: str, parties: int) -> None:
    _barriers[name] = asyncio.Barrier(parties)


async def _meet_and_write(ctx: RunContext[ToolContext], label: str, note: str) -> str:
    barrier = _barriers[ctx.deps.agent_slug]
    async with asyncio.timeout(5):
        await barrier.wait()
    deps = ctx.deps
    await deps.memories.remember(deps.account, agent=deps.agent_slug, key=label, value=note)
    return f"{label} wrote {note!r}"


async def meet_a(ctx: RunContext[ToolContext], note: str) -> str:
    """Meets meet_b, then writes to the database in its own unit of work."""
    return await _meet_and_write(ctx, "a", note)


async def meet_b(ctx: RunContext[ToolContext], note: str) -> str:
    """Meets meet_a, then writes to the database in its own unit of work."""
    return await _meet_and_write(ctx, "b", note)


async def boom(ctx: RunContext[ToolContext], query: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom on {query!r}")


async def hang(ctx: RunContext[ToolContext], query: str) -> str:
    """Never returns."""
    await asyncio.Event().wait()
    return "unreachable"


def sync_echo(ctx: RunContext[ToolContext], text: str) -> str:
    """A plain (blocking) function: runs in a worker thread."""
    return f"echo: {text}"
