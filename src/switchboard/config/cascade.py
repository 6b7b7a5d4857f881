"""The configuration cascade: defaults → global → account → agent file → database overrides.

Dictionaries merge key by key; any other value (lists included) replaces what came before.
Every leaf keeps the name of the layer it came from, which is what ``explain`` shows.

The merge is linear in the size of the layers: replacing a value forgets only the sources of
the subtree it replaces (each was recorded once), never by scanning every known path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from switchboard.config.schema import EffectiveConfig, builtin_defaults

DEFAULT_SOURCE = "default"
DB_SOURCE = "db"


@dataclass(frozen=True, slots=True)
class Layer:
    source: str
    data: Mapping[str, Any]


@dataclass(slots=True)
class Merged:
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # dotted leaf path → layer source


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    source: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.message}"


def merge(layers: Sequence[Layer]) -> Merged:
    merged = Merged()
    for layer in [Layer(DEFAULT_SOURCE, builtin_defaults()), *layers]:
        _merge_into(merged, merged.values, layer.data, prefix="", source=layer.source)
    return merged


def _merge_into(
    merged: Merged, target: dict[str, Any], data: Mapping[str, Any], *, prefix: str, source: str
) -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            if not value and not current:
                merged.sources[path] = source
            _merge_into(merged, current, value, prefix=f"{path}.", source=source)
            continue
        if key in target:
            _forget(merged.sources, path, current)
        if isinstance(value, Mapping):
            target[key] = {}
            merged.sources[path] = source
            _merge_into(merged, target[key], value, prefix=f"{path}.", source=source)
        else:
            target[key] = value
            merged.sources[path] = source


def _forget(sources: dict[str, str], path: str, replaced: object) -> None:
    """Drop the sources of ``path`` and of everything under the value it held."""
    sources.pop(path, None)
    if isinstance(replaced, dict):
        for key, child in replaced.items():
            _forget(sources, f"{path}.{key}", child)


MAX_PROBLEMS = 50


def validate(merged: Merged) -> tuple[EffectiveConfig | None, list[ConfigProblem]]:
    """The effective config, or the problems (at most ``MAX_PROBLEMS``), each naming the layer
    that set the bad key."""
    try:
        return EffectiveConfig.model_validate(merged.values), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:MAX_PROBLEMS]:
            key = ".".join(str(part) for part in error["loc"])
            problems.append(
                ConfigProblem(source=source_of(merged, key), key=key, message=error["msg"])
            )
        return None, problems


def source_of(merged: Merged, key: str) -> str:
    """The layer that set ``key`` or, for a key inside a value, its closest ancestor."""
    parts = key.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in merged.sources:
            return merged.sources[candidate]
        children = [s for p, s in merged.sources.items() if p.startswith(f"{candidate}.")]
        if children:
            return children[-1]
        parts.pop()
    return DEFAULT_SOURCE


def explain(merged: Merged) -> list[tuple[str, Any, str]]:
    """Every leaf of the merged config as (dotted key, value, source), sorted by key."""
    rows: list[tuple[str, Any, str]] = []
    _leaves(merged.values, "", merged.sources, rows)
    return sorted(rows, key=lambda row: row[0])


def _leaves(
    value: Mapping[str, Any],
    prefix: str,
    sources: Mapping[str, str],
    out: list[tuple[str, Any, str]],
) -> None:
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            _leaves(item, f"{path}.", sources, out)
        else:
            out.append((path, item, sources.get(path, DEFAULT_SOURCE)))
