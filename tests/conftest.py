"""Test fixtures. Every run makes its own databases: an SQLite file always, and a PostgreSQL
database when SWITCHBOARD_TEST_POSTGRES_URL (an admin connection URL) is set. With
SWITCHBOARD_TEST_REQUIRE_POSTGRES=1 an unreachable server fails the run instead of skipping."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from blockbuster import blockbuster_ctx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from switchboard.app import create_app
from switchboard.bootstrap import Container, build_container
from switchboard.db.migrate import upgrade
from switchboard.db.uow import AccountScope
from switchboard.settings import Settings
from tests.live import FakeProviderProcess

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ADMIN_KEY = "test-admin-key-0123456789"
PG_ADMIN_URL = os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("SWITCHBOARD_TEST_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgres"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _pg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _create_pg_database() -> tuple[str, str]:
    if not PG_ADMIN_URL:
        message = "SWITCHBOARD_TEST_POSTGRES_URL is not set"
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL tests are required but {message}")
        pytest.skip(message)
    name = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL tests are required but the server is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    return name, url.render_as_string(hide_password=False)


async def _drop_pg_database(name: str) -> None:
    assert PG_ADMIN_URL
    conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated, empty-at-start database for this run, on each backend."""
    async with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "admin_key": SecretStr(ADMIN_KEY),
        "embedder": "none",  # the semantic tests ask for the local model explicitly
        "otel_enabled": "off",  # an OTLP endpoint in the developer's shell exports nothing
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    built = await build_container(settings)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def account(container: Container) -> AccountScope:
    created = await container.tenancy.create_account(slug=unique("acct"), name="Test account")
    return AccountScope(id=created.id, slug=created.slug)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an HTTP client bound to it in-process."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield app, http


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as (_, http):
        yield http


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def new_account(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """Create an account over HTTP; its slug and the headers of a fresh key for it."""
    slug = unique("acct")
    response = await client.post("/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN)
    assert response.status_code == 201, response.text
    key = await client.post(f"/v1/accounts/{slug}/keys", json={}, headers=ADMIN)
    assert key.status_code == 201, key.text
    return slug, {"Authorization": f"Bearer {key.json()['key']}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def env_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point CLI commands (which read the environment) at the test database."""
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("SWITCHBOARD_EMBEDDER", "none")
    return database_url


REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL")
REQUIRE_REDIS = os.environ.get("SWITCHBOARD_TEST_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis to share limits through; fails (not skips) when required but unreachable."""
    import redis

    if not REDIS_URL:
        if REQUIRE_REDIS:
            pytest.fail("Redis tests are required but SWITCHBOARD_TEST_REDIS_URL is not set")
        pytest.skip("SWITCHBOARD_TEST_REDIS_URL is not set")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        if REQUIRE_REDIS:
            pytest.fail(f"Redis tests are required but Redis is unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    return REDIS_URL


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProviderProcess]:
    process = FakeProviderProcess()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def fake(fake_provider: FakeProviderProcess) -> FakeProviderProcess:
    """The fake provider with default behaviour and zeroed statistics."""
    await fake_provider.reset()
    return fake_provider


@pytest.fixture(autouse=True)
def no_blocking_calls_in_the_event_loop() -> Iterator[None]:
    """Rule 10: any blocking call (sleep, file or socket I/O, …) made by Switchboard's code
    inside the event loop fails the test."""
    with blockbuster_ctx("switchboard") as detector:
        # asyncpg looks for ~/.pgpass and ~/.postgresql certificates while it parses the
        # arguments of a new connection: once per new pooled connection, not per request
        # (see docs/decisions.md).
        for function in detector.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield


@asynccontextmanager
async def fresh_database(backend: str, folder: Path) -> AsyncIterator[str]:
    """A new, migrated database of its own (not the session's shared one), dropped afterwards:
    for tests that start a whole server process, seed the demo account or count rows."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'switchboard.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    name, url = await _create_pg_database()
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await _drop_pg_database(name)


@pytest.fixture
def recorded() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider of the test's own (the global one is never set), recording in memory.
    The SDK is imported here, not at the top: a test that proves it is never imported runs in
    a process of its own anyway, but nothing else should pay for it."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()
