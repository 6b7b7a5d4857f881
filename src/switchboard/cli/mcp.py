"""``switchboard mcp``: how to add this server's ``/mcp`` to an MCP client — its URL and ready
to paste configurations (VS Code, Claude Code, Claude Desktop, Cursor). Nothing is contacted.

The key is an account key (``--key`` or ``$SWITCHBOARD_API_KEY``); the admin key is refused at
/mcp, so it is refused here too. Without a key the snippets carry a placeholder (VS Code's
prompts for it and keeps it in its secret storage)."""

from __future__ import annotations

import json
from typing import Any, Literal

import typer

from switchboard.cli.common import fail
from switchboard.settings import Settings

Client = Literal["all", "vscode", "claude-code", "claude-desktop", "cursor"]
PLACEHOLDER = "<account-key>"


def mcp(
    key: str | None = typer.Option(
        None,
        envvar="SWITCHBOARD_API_KEY",
        help="An account API key (never the admin key). Default: $SWITCHBOARD_API_KEY.",
    ),
    url: str | None = typer.Option(
        None, help="The server's public base URL. Default: http://<host>:<port> of the settings."
    ),
    name: str = typer.Option("switchboard", help="The server's name in the client's config."),
    client: Client = typer.Option("all", help="Print the configuration of one client only."),
) -> None:
    """Print the /mcp URL and how to add it to an MCP client (one tool per agent of the key's
    account, ask_<agent>, and one per directory, search_<directory>)."""
    settings = Settings()
    admin = settings.admin_key
    if key is not None and admin is not None and key == admin.get_secret_value():
        fail("/mcp refuses the admin key (403): use an account key (switchboard keys create)")
    endpoint = f"{(url or _local_url(settings)).rstrip('/')}/mcp"
    shown = key or PLACEHOLDER
    snippets = {
        "vscode": ("VS Code (.vscode/mcp.json)", _vscode(name, endpoint, key)),
        "claude-code": ("Claude Code", _claude_code(name, endpoint, shown)),
        "claude-desktop": (
            "Claude Desktop (claude_desktop_config.json, through the mcp-remote bridge)",
            _claude_desktop(name, endpoint, shown),
        ),
        "cursor": ("Cursor (~/.cursor/mcp.json)", _cursor(name, endpoint, shown)),
    }
    typer.echo(f"MCP endpoint (Streamable HTTP): {endpoint}")
    typer.echo(f"Authorization: Bearer {shown}")
    for which, (title, text) in snippets.items():
        if client in ("all", which):
            typer.echo(f"\n{title}:\n{text}")
    if key is None:
        typer.echo(f"\nReplace {PLACEHOLDER} with an account key, or pass --key.")
    allowed = ", ".join(settings.mcp_allowed_hosts)
    typer.echo(
        f"\nThe server answers 421 to a Host it does not list (now: {allowed}); behind a proxy "
        "or on another name, add it to SWITCHBOARD_MCP_ALLOWED_HOSTS."
    )


def _local_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _dump(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2)


def _vscode(name: str, endpoint: str, key: str | None) -> str:
    server: dict[str, Any] = {"type": "http", "url": endpoint}
    config: dict[str, Any] = {"servers": {name: server}}
    if key is None:
        prompt = f"{name}-key"
        config = {
            "inputs": [
                {
                    "type": "promptString",
                    "id": prompt,
                    "description": "Switchboard account API key",
                    "password": True,
                }
            ],
            **config,
        }
        server["headers"] = {"Authorization": f"Bearer ${{input:{prompt}}}"}
    else:
        server["headers"] = {"Authorization": f"Bearer {key}"}
    return _dump(config)


def _claude_code(name: str, endpoint: str, key: str) -> str:
    return (
        f'claude mcp add --transport http {name} {endpoint} --header "Authorization: Bearer {key}"'
    )


def _claude_desktop(name: str, endpoint: str, key: str) -> str:
    server = {
        "command": "npx",
        "args": ["-y", "mcp-remote", endpoint, "--header", "Authorization:${AUTH_HEADER}"],
        "env": {"AUTH_HEADER": f"Bearer {key}"},
    }
    return _dump({"mcpServers": {name: server}})


def _cursor(name: str, endpoint: str, key: str) -> str:
    server = {"url": endpoint, "headers": {"Authorization": f"Bearer {key}"}}
    return _dump({"mcpServers": {name: server}})
