"""``switchboard serve`` on a first start and a restart: secrets are printed once, files are
owner-only, seeding runs behind a started server and happens once across processes."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from switchboard.app import create_app
from switchboard.bootstrap import build_container
from switchboard.cli.serve import _seed_after_startup
from switchboard.db.uow import AccountScope
from switchboard.directory.service import DirectoryService
from switchboard.operations.seed import DEMO_ACCOUNT, DEMO_PRACTITIONERS, WAITING, Seeded, seed_demo
from tests.conftest import ADMIN, ADMIN_KEY, BACKENDS, fresh_database, make_settings
from tests.live import free_port

SECRET = re.compile(r"sb_[A-Za-z0-9_\-]{20,}")
LOCATIONS = 20


def _serve(cwd: Path, *, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``switchboard serve`` in ``cwd`` with umask 0 (so only explicit modes protect files)."""
    port = free_port()
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SWITCHBOARD_ADMIN_KEY", "SWITCHBOARD_DATABASE_URL", "SWITCHBOARD_REDIS_URL")
    }
    log = (cwd / f"serve-{port}.log").open("wb")
    with log:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "switchboard", "serve", "--port", str(port)],
            cwd=cwd,
            env=clean | {"SWITCHBOARD_EMBEDDER": "none", "COLUMNS": "400"} | (env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            umask=0,
        )
    return process, log.name


def _output(log: str) -> str:
    return Path(log).read_text(encoding="utf-8", errors="replace")


def _wait_for_ready_line(process: subprocess.Popen[bytes], log: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = _output(log)
        if re.search(r"^ready\.", text, re.MULTILINE):
            return text
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"serve did not print its ready line:\n{_output(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _first_start_and_restart(cwd: Path) -> tuple[str, str, dict[str, int]]:
    process, log = _serve(cwd)
    try:
        first = _wait_for_ready_line(process, log)
        var = cwd / "var"
        modes = {p.name: _mode(p) for p in [var, *var.iterdir()]}  # -wal/-shm exist while open
    finally:
        _stop(process)
    process, log = _serve(cwd)
    try:
        second = _wait_for_ready_line(process, log)
    finally:
        _stop(process)
    return first, second, modes


async def test_secrets_are_printed_once_and_files_are_owner_only(tmp_path: Path) -> None:
    """Issue 11: the admin key only when it is created, then its path; the demo key once, at
    creation, never inside the commands; var/, the database, -wal, -shm and admin.key are
    owner-only even with umask 0."""
    first, second, modes = await asyncio.to_thread(_first_start_and_restart, tmp_path)
    admin_key = (tmp_path / "var" / "admin.key").read_text(encoding="utf-8").strip()

    assert first.count(admin_key) == 1, first
    secrets = SECRET.findall(first)
    demo_keys = [s for s in secrets if s != admin_key]
    assert len(demo_keys) == 1, first  # the demo key, once
    commands = [line for line in first.splitlines() if "curl" in line]
    assert len(commands) == 3
    for line in commands:
        assert "$DEMO_KEY" in line
        assert not SECRET.search(line), line
    assert "<your demo key>" in first
    assert f"switchboard keys create {DEMO_ACCOUNT}" in first

    assert not SECRET.search(second), second  # a restart prints no key at all
    assert "admin key: in var/admin.key" in second
    assert "<your demo key>" in second

    assert modes["var"] == 0o700
    for name in ("switchboard.db", "switchboard.db-wal", "switchboard.db-shm", "admin.key"):
        assert modes[name] == 0o600, (name, oct(modes[name]))


async def test_healthz_answers_while_seeding_and_readyz_says_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeding runs behind the started server: /healthz answers during it, /readyz is a 503
    STARTING until it is over, then the demo commands are printed."""
    gate = asyncio.Event()
    entered = asyncio.Event()
    original = DirectoryService.import_entries

    async def held_import(self: DirectoryService, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(DirectoryService, "import_entries", held_import)
    reports: list[str] = []
    done: list[Seeded] = []
    async with fresh_database("sqlite", tmp_path) as url:
        app = create_app(make_settings(url))
        _seed_after_startup(app, "http://test", report=reports.append, on_done=done.append)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                await asyncio.wait_for(entered.wait(), timeout=30)
                started = time.monotonic()
                assert (await http.get("/healthz")).status_code == 200
                assert time.monotonic() - started < 1.0
                starting = await http.get("/readyz")
                assert starting.status_code == 503, starting.text
                assert starting.json()["error"]["code"] == "STARTING"
                assert "Retry-After" in starting.headers
                assert not done

                gate.set()
                deadline = time.monotonic() + 60
                while (await http.get("/readyz")).status_code != 200:
                    assert time.monotonic() < deadline, reports
                    await asyncio.sleep(0.05)
    assert len(done) == 1
    assert done[0].created
    assert done[0].imported == {"practitioners": DEMO_PRACTITIONERS, "locations": LOCATIONS}
    assert any("seeding the directory 'practitioners': 1000 entries" in r for r in reports)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_seeders_started_together_seed_once(backend: str, tmp_path: Path) -> None:
    """Two processes (two engines, two connections) seeding one empty database together: one
    seeds while the other waits for it, then finds everything in place. 1 000 + 20 entries,
    one demo key."""
    async with fresh_database(backend, tmp_path) as url:
        settings = make_settings(url)
        one, two = await build_container(settings), await build_container(settings)
        try:
            reports: tuple[list[str], list[str]] = ([], [])
            results = await asyncio.gather(
                seed_demo(one, report=reports[0].append),
                seed_demo(two, report=reports[1].append),
            )
            assert sorted(r.created for r in results) == [False, True]
            assert sorted(len(r.imported) for r in results) == [0, 2]
            assert [WAITING in r for r in reports].count(True) == 1, reports

            found = await one.tenancy.get_account(DEMO_ACCOUNT)
            scope = AccountScope(found.id, found.slug)
            assert await one.directories.count(scope, "practitioners") == DEMO_PRACTITIONERS
            assert await one.directories.count(scope, "locations") == LOCATIONS
            keys, _ = await one.tenancy.list_keys(scope, cursor=None, limit=10)
            assert len(keys) == 1
        finally:
            await one.aclose()
            await two.aclose()


def _two_servers(url: str, cwd: Path) -> tuple[list[str], Any]:
    env = {"SWITCHBOARD_DATABASE_URL": url, "SWITCHBOARD_ADMIN_KEY": ADMIN_KEY}
    started = [_serve(cwd, env=env), _serve(cwd, env=env)]
    try:
        outputs = [_wait_for_ready_line(process, log) for process, log in started]
        base = f"http://127.0.0.1:{_port(outputs[0])}"
        with httpx.Client(base_url=base, headers=ADMIN, timeout=10) as http:
            keys = http.get(f"/v1/accounts/{DEMO_ACCOUNT}/keys").json()
    finally:
        for process, _ in started:
            _stop(process)
    return outputs, keys


def _port(output: str) -> str:
    found = re.search(r"Switchboard on http://127\.0\.0\.1:(\d+)", output)
    assert found, output
    return found.group(1)


@pytest.mark.postgres
async def test_two_servers_started_together_on_postgres_seed_once(tmp_path: Path) -> None:
    """Two ``switchboard serve`` processes on one new PostgreSQL database: both become ready,
    one of them seeded (the advisory lock), 1 000 + 20 entries, one demo key."""
    async with fresh_database("postgres", tmp_path) as url:
        outputs, keys = await asyncio.to_thread(_two_servers, url, tmp_path)
        container = await build_container(make_settings(url))
        try:
            found = await container.tenancy.get_account(DEMO_ACCOUNT)
            scope = AccountScope(found.id, found.slug)
            counts = {
                name: await container.directories.count(scope, name)
                for name in ("practitioners", "locations")
            }
        finally:
            await container.aclose()
    assert [("created the account" in o) for o in outputs].count(True) == 1, outputs
    assert sum(WAITING in o for o in outputs) <= 1
    items = keys["items"] if isinstance(keys, dict) else keys
    assert len(items) == 1, keys
    assert counts == {"practitioners": DEMO_PRACTITIONERS, "locations": LOCATIONS}
