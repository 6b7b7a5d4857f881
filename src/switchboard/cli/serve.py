from __future__ import annotations

import os
import secrets
from pathlib import Path

import typer
import uvicorn
from pydantic import SecretStr

from switchboard.app import create_app
from switchboard.cli.common import console, fail, run_with_container
from switchboard.db.engine import ensure_sqlite_directory, sqlite_path
from switchboard.db.migrate import current_revision, head_revision, upgrade
from switchboard.seed import DEMO_ACCOUNT, DEMO_AGENT, DIRECTORY_AGENT, Seeded, seed_demo
from switchboard.settings import Settings


def admin_key_for(settings: Settings, key_file: Path) -> tuple[str, bool]:
    """The admin key: SWITCHBOARD_ADMIN_KEY, else one kept in ``key_file`` (made on first use).
    Returns the key and whether it came from the file."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value(), False
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip(), True
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = "sb_admin_" + secrets.token_urlsafe(32)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, True


def serve(
    host: str = typer.Option(None, help="Bind address (default: SWITCHBOARD_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: SWITCHBOARD_PORT or 8000)."),
    seed: bool = typer.Option(True, help="Create the demo account and agent on first start."),
    key_file: Path = typer.Option(
        Path("var/admin.key"),
        help="Where the admin key is kept when SWITCHBOARD_ADMIN_KEY is not set.",
    ),
) -> None:
    """Start the HTTP server. An SQLite database is created and migrated automatically."""
    settings = Settings()
    if settings.is_sqlite:
        ensure_sqlite_directory(settings.database_url)
        upgrade(settings.database_url)
    elif current_revision(settings.database_url) != head_revision():
        fail("the PostgreSQL schema is not up to date: run 'switchboard db upgrade' first")
    key, from_file = admin_key_for(settings, key_file)
    settings = settings.model_copy(update={"admin_key": SecretStr(key)})
    bind_host, bind_port = host or settings.host, port or settings.port
    where = sqlite_path(settings.database_url) or "PostgreSQL"
    seeded = run_with_container(seed_demo) if seed else Seeded(created=False)
    console.print(f"Switchboard on http://{bind_host}:{bind_port}  (database: {where})")
    if from_file:
        console.print(f"admin key ({key_file}): {key}", highlight=False)
    if seed:
        _print_demo(f"http://{bind_host}:{bind_port}", seeded, from_file=from_file)
    uvicorn.run(create_app(settings), host=bind_host, port=bind_port, log_level="info")


def _print_demo(base: str, seeded: Seeded, *, from_file: bool) -> None:
    if seeded.created:
        console.print(
            f"created account '{DEMO_ACCOUNT}' with agent '{DEMO_AGENT}' (model: demo) "
            f"and its API key (shown once): {seeded.key}",
            highlight=False,
        )
        auth = f"Authorization: Bearer {seeded.key}"
    else:
        auth = (
            "Authorization: Bearer $(cat var/admin.key)"
            if from_file
            else "Authorization: Bearer $SWITCHBOARD_ADMIN_KEY"
        )
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
