"""Helpers shared by CLI commands: settings, a container for one command, error output."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from switchboard.bootstrap import Container, build_container
from switchboard.db.uow import AccountScope
from switchboard.errors import SwitchboardError
from switchboard.settings import Settings

T = TypeVar("T")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, *, problems: list[str] | None = None, code: int = 1) -> NoReturn:
    # The message is text, not markup: "[otel]" or a JSON path in it must print as written.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    for problem in problems or []:
        err_console.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(code)


async def account_scope(container: Container, slug: str) -> AccountScope:
    """The scope of the account ``slug`` (404 ACCOUNT_NOT_FOUND when there is none)."""
    found = await container.tenancy.get_account(slug)
    return AccountScope(found.id, found.slug)


def run_with_container(operation: Callable[[Container], Awaitable[T]]) -> T:
    """Run one async operation against the configured database, then dispose of the engine."""

    settings = Settings()  # reads .env: before the event loop starts

    async def main() -> T:
        container = await build_container(settings)
        try:
            return await operation(container)
        finally:
            await container.aclose()

    try:
        return asyncio.run(main())
    except SwitchboardError as exc:
        problems = exc.details.get("problems")
        listed = [_problem_line(p) for p in problems] if isinstance(problems, list) else None
        fail(
            f"{exc.code}: {exc.message if not listed else exc.message.split(':')[0]}",
            problems=listed,
        )


def _problem_line(problem: object) -> str:
    if isinstance(problem, dict):
        return ": ".join(str(v) for v in problem.values())
    return str(problem)
