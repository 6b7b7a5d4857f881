"""The agent tools ``search_directory`` and ``get_directory_entry``. Each call opens its own
unit of work through :class:`DirectoryService` (tool calls of one response run concurrently).
Bad arguments come back to the model as an ``ERROR:`` text it can act on, never a failed turn."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.tools import ToolDefinition

from switchboard.config.directories import DirectoryConfig
from switchboard.errors import InvalidRequest, NotFound
from switchboard.runtime.tools.context import ToolContext

MAX_RESULTS = 20
_TEXT_LIMIT = 200


async def search_directory(
    ctx: RunContext[ToolContext],
    schema: str,
    query: str = "",
    filters: dict[str, Any] | None = None,
    limit: int = 5,
) -> str:
    """Search one of the account's directories.

    Args:
        schema: The directory to search.
        query: Words to look for (names, specialties, places...); may be empty with filters.
        filters: Exact filters, field → value, a list of values (any of them), or for numbers
            a range such as "5..20".
        limit: How many results (1-20).
    """
    deps = ctx.deps
    try:
        page = await deps.directories.search(
            deps.account,
            schema,
            query=query[:1000],
            filters=_filters(filters or {}),
            limit=max(1, min(limit, MAX_RESULTS)),
        )
    except (InvalidRequest, NotFound) as exc:
        return f"ERROR: {exc.message}"
    if not page.hits:
        return f"{schema}: no results"
    lines = [f"{schema}: {len(page.hits)} result(s) ({page.mode} ranking)"]
    for index, hit in enumerate(page.hits, start=1):
        lines.append(f"{index}. [{hit.entry.external_id}] {_describe(hit.entry.data)}")
    return "\n".join(lines)


async def get_directory_entry(ctx: RunContext[ToolContext], schema: str, id: str) -> str:
    """Get one entry of a directory by its id (as search_directory shows it in brackets).

    Args:
        schema: The directory.
        id: The entry's id.
    """
    deps = ctx.deps
    try:
        entry = await deps.directories.get_entry(deps.account, schema, id[:200])
    except (InvalidRequest, NotFound) as exc:
        return f"ERROR: {exc.message}"
    fields = "\n".join(f"{key}: {_value(value, limit=2000)}" for key, value in entry.data.items())
    return f"[{entry.external_id}] in {schema}\n{fields}"


async def prepare_directory_tool(
    ctx: RunContext[ToolContext], tool: ToolDefinition
) -> ToolDefinition | None:
    """Show the model the account's directories: the ``schema`` parameter becomes an enum and
    the description lists each directory's fields. Hidden when the account has none."""
    directories = ctx.deps.directory_schemas
    if not directories:
        return None
    parameters = dict(tool.parameters_json_schema)
    properties = dict(parameters.get("properties", {}))
    schema_property = dict(properties.get("schema", {}))
    schema_property["enum"] = sorted(directories)
    properties["schema"] = schema_property
    parameters["properties"] = properties
    described = "\n".join(_describe_directory(n, c) for n, c in sorted(directories.items()))
    return dataclasses.replace(
        tool,
        parameters_json_schema=parameters,
        description=f"{tool.description}\n\nDirectories:\n{described}",
    )


def _describe_directory(name: str, config: DirectoryConfig) -> str:
    fields = ", ".join(
        f"{field} ({spec.type}{', filterable' if spec.is_filterable else ''})"
        for field, spec in config.fields.items()
    )
    about = f" — {config.description}" if config.description else ""
    return f"- {name}{about}: {fields}"


def _filters(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for field, value in raw.items():
        items = value if isinstance(value, list) else [value]
        filters[str(field)] = [_filter_text(item) for item in items]
    return filters


def _filter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        low, high = value.get("min", ""), value.get("max", "")
        return f"{low if low is not None else ''}..{high if high is not None else ''}"
    return str(value)


def _describe(data: Mapping[str, Any]) -> str:
    return "; ".join(f"{key}: {_value(value, limit=_TEXT_LIMIT)}" for key, value in data.items())


def _value(value: Any, *, limit: int) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
