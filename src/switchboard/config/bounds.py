"""Bounds on configuration, so that no single request or file can make the server work for
long: an agent's config overrides are capped in size, keys and depth at the edge (422), and a
config file's YAML is refused beyond a size, a nesting depth and an alias expansion (a 500-byte
"billion laughs" file expands to billions of nodes) — each with a clear error."""

from __future__ import annotations

import json
from typing import Any

import yaml

MAX_OVERRIDE_BYTES = 64 * 1024
MAX_OVERRIDE_NODES = 2000  # keys and list items, all levels
MAX_CONFIG_DEPTH = 8  # providers.<p>.models.<m>.rpm is 5
MAX_FILE_BYTES = 1024 * 1024
MAX_FILE_NODES = 100_000  # after aliases are expanded
MAX_ALIASES = 100


def count_nodes(value: object, *, limit: int) -> int:
    """Keys and items of ``value`` counted (an alias counted every time it appears), stopping
    as soon as ``limit`` is passed — so an alias bomb costs ``limit`` steps, not its size."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            count += len(item)
            stack.extend(item)
    return count


def check_overrides(value: dict[str, Any]) -> dict[str, Any]:
    """An agent's ``config`` overrides within the bounds (a pydantic AfterValidator)."""
    if count_nodes(value, limit=MAX_OVERRIDE_NODES) > MAX_OVERRIDE_NODES:
        raise ValueError(f"config overrides may hold at most {MAX_OVERRIDE_NODES} keys and items")
    depth = _depth(value)
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"config overrides may nest at most {MAX_CONFIG_DEPTH} levels")
    size = len(json.dumps(value, separators=(",", ":")))
    if size > MAX_OVERRIDE_BYTES:
        raise ValueError(
            f"config overrides may be at most {MAX_OVERRIDE_BYTES} bytes of JSON (got {size}); "
            "large tables belong in the config tree"
        )
    return value


def _depth(value: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing more than ``MAX_ALIASES`` aliases and nesting deeper than
    ``MAX_CONFIG_DEPTH`` + 4 while it composes (before anything is built)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name)")
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH + 4:
                raise yaml.YAMLError(f"nested deeper than {MAX_CONFIG_DEPTH + 4} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """Parse a config file within the bounds; :class:`yaml.YAMLError` says which was passed."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise yaml.YAMLError(f"larger than {MAX_FILE_BYTES} bytes")
    loader = BoundedLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if count_nodes(data, limit=MAX_FILE_NODES) > MAX_FILE_NODES:
        raise yaml.YAMLError(f"more than {MAX_FILE_NODES} keys and items once aliases expand")
    return data
