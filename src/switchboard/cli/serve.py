"""``switchboard serve``: migrate (SQLite), start the server, and seed the demo account in the
background of the started server, saying what it does.

Secrets: the admin key is printed only when this command creates it (afterwards: where it is
kept); an account key is printed once, when the demo account is created, and never inside the
ready-to-paste examples (they read it from ``$DEMO_KEY``)."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from switchboard import telemetry
from switchboard.app import create_app
from switchboard.bootstrap import Container
from switchboard.cli.common import console, fail
from switchboard.db.engine import ensure_private_directory, ensure_sqlite_directory, sqlite_path
from switchboard.db.migrate import current_revision, head_revision, upgrade
from switchboard.errors import ConfigurationError
from switchboard.logs import logging_config
from switchboard.operations.seed import (
    DEMO_ACCOUNT,
    DEMO_AGENT,
    DIRECTORY_AGENT,
    Report,
    Seeded,
    seed_in_background,
)
from switchboard.settings import Settings

DEMO_KEY_VARIABLE = "DEMO_KEY"


@dataclass(frozen=True, slots=True)
class AdminKey:
    key: str
    source: Literal["environment", "file"]
    created: bool  # made by this call (and so shown once)


def admin_key_for(settings: Settings, key_file: Path) -> AdminKey:
    """The admin key: SWITCHBOARD_ADMIN_KEY, else one kept in ``key_file`` (made on first use,
    owner-only, in an owner-only folder when the folder is new)."""
    if settings.admin_key is not None:
        return AdminKey(settings.admin_key.get_secret_value(), "environment", created=False)
    if key_file.exists():
        return AdminKey(key_file.read_text(encoding="utf-8").strip(), "file", created=False)
    ensure_private_directory(key_file.parent)
    key = "sb_admin_" + secrets.token_urlsafe(32)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return AdminKey(key, "file", created=True)


def serve(
    host: str = typer.Option(None, help="Bind address (default: SWITCHBOARD_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: SWITCHBOARD_PORT or 8000)."),
    seed: bool = typer.Option(True, help="Create the demo account and agent on first start."),
    key_file: Path = typer.Option(
        Path("var/admin.key"),
        help="Where the admin key is kept when SWITCHBOARD_ADMIN_KEY is not set.",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        envvar="SWITCHBOARD_WORKERS",
        help="Server processes on one port (one per core on a production box). Provider "
        "limits stay exact across them: through SWITCHBOARD_REDIS_URL if set, else through "
        "the database.",
    ),
) -> None:
    """Start the HTTP server. An SQLite database is created (owner-only) and migrated
    automatically; the demo account is seeded in the background on the first start."""
    settings = Settings()
    try:
        telemetry.check_available(settings)  # a clear message, not a trace from every worker
    except ConfigurationError as exc:
        fail(exc.message)
    # Without Redis, several workers share provider limits through the database: otherwise
    # every process would keep its own and the provider would see N × each limit.
    shared_limits = workers > 1 and settings.redis_url is None
    if settings.is_sqlite:
        ensure_sqlite_directory(settings.database_url)
        upgrade(settings.database_url)
    elif current_revision(settings.database_url) != head_revision():
        fail("the PostgreSQL schema is not up to date: run 'switchboard db upgrade' first")
    admin = admin_key_for(settings, key_file)
    settings = settings.model_copy(update={"admin_key": SecretStr(admin.key)})
    bind_host, bind_port = host or settings.host, port or settings.port
    where = sqlite_path(settings.database_url) or "PostgreSQL"
    base = f"http://{bind_host}:{bind_port}"
    processes = f", {workers} worker processes" if workers > 1 else ""
    # Structured logs (uvicorn's too), without the admin key; SWITCHBOARD_LOG_FORMAT/_LEVEL.
    log_config, log_level = logging_config(settings), settings.log_level.lower()
    console.print(f"Switchboard on {base}  (database: {where}{processes})")
    _print_admin_key(admin, key_file)
    if workers > 1:
        # Each worker builds its app from the environment (the admin key included); seeding
        # is safe in all of them at once (the seed lock lets one do it).
        os.environ["SWITCHBOARD_ADMIN_KEY"] = admin.key
        os.environ[_SEED_BASE] = base if seed else ""
        if shared_limits:
            os.environ["SWITCHBOARD_SHARED_LIMITS"] = "true"
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            host=bind_host,
            port=bind_port,
            log_config=log_config,  # applied in each worker process too
            log_level=log_level,
        )
        return
    app = create_app(settings)
    if seed:
        _seed_after_startup(app, base)
    _freeze_after_startup(app)
    uvicorn.run(app, host=bind_host, port=bind_port, log_config=log_config, log_level=log_level)


_SEED_BASE = "_SWITCHBOARD_WORKER_SEED_BASE"


def worker_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N`` (settings from the environment)."""
    app = create_app(Settings())
    base = os.environ.get(_SEED_BASE)
    if base:
        _seed_after_startup(app, base)
    _freeze_after_startup(app)
    return app


def _freeze_after_startup(app: FastAPI) -> None:
    """Once the app has started, move everything alive then (modules, the container, caches
    warmed at start) out of the garbage collector's reach: a full collection then walks only
    what requests made, not the whole heap of a server (``gc.freeze``). Objects made by requests
    are collected as before."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with inner(application):
            gc.collect()
            gc.freeze()
            yield

    app.router.lifespan_context = lifespan


def _print_admin_key(admin: AdminKey, key_file: Path) -> None:
    if admin.created:
        console.print(
            f"created the admin key (shown once; kept in {key_file}): {admin.key}", highlight=False
        )
    elif admin.source == "file":
        console.print(f"admin key: in {key_file}", highlight=False)
    else:
        console.print("admin key: from SWITCHBOARD_ADMIN_KEY", highlight=False)


def _report(message: str) -> None:
    console.print(message, highlight=False, markup=False)


def _seed_after_startup(
    app: FastAPI,
    base: str,
    *,
    report: Report = _report,
    on_done: Callable[[Seeded], None] | None = None,
) -> None:
    """Wrap the app's lifespan: once the server is up (and answering /healthz), seed in a
    background task, then print the demo commands. Shutdown cancels an unfinished seeding."""
    inner = app.router.lifespan_context
    finish = on_done or functools.partial(_print_demo, base)

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with inner(application):
            container: Container = application.state.container
            task = asyncio.create_task(
                seed_in_background(application.state, container, report=report, on_done=finish),
                name="seed-demo",
            )
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    app.router.lifespan_context = lifespan


def _print_demo(base: str, seeded: Seeded) -> None:
    if seeded.created:
        console.print(
            f"created the account '{DEMO_ACCOUNT}' with the agent '{DEMO_AGENT}' (model: demo) "
            f"and its API key (shown once, not again): {seeded.key}",
            highlight=False,
        )
    console.print(
        f"ready. Set your demo key once (a new one: switchboard keys create {DEMO_ACCOUNT}):",
        highlight=False,
    )
    _print_command(f"  export {DEMO_KEY_VARIABLE}='<your demo key>'")
    auth = f"Authorization: Bearer ${DEMO_KEY_VARIABLE}"
    console.print("try a chat:", highlight=False)
    _print_command(_chat_curl(base, DEMO_AGENT, auth, "What is 12*7? Remember it as lucky."))
    console.print("ask the hospital directory (parallel searches):", highlight=False)
    _print_command(
        _chat_curl(
            base, DIRECTORY_AGENT, auth, "find me cardiologists in Seattle who accept Medicare"
        )
    )
    _print_command(
        f"  curl -s '{base}/v1/accounts/{DEMO_ACCOUNT}/directories/practitioners/search"
        f'?q=heart+doctor&filter.city=Seattle&filter.insurance=Medicare\' -H "{auth}"'
    )


def _chat_curl(base: str, agent: str, auth: str, message: str) -> str:
    return (
        f"  curl -s {base}/v1/accounts/{DEMO_ACCOUNT}/agents/{agent}/chat "
        f"-H \"{auth}\" -H 'content-type: application/json' "
        f'-d \'{{"message": "{message}"}}\''
    )


def _print_command(command: str) -> None:
    console.print(command, highlight=False, markup=False)
