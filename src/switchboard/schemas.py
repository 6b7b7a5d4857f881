"""Shared schema bases for every HTTP-facing shape: the strict model base, the one text type and
the one free-form JSON type.

Every text a client sends goes through :data:`SafeStr` (or a type built on it): a NUL
character or a lone surrogate is refused with 422 ``VALIDATION_ERROR`` here, at the edge, on
both databases — PostgreSQL cannot store either, SQLite would store what no client can read
back. Free-form JSON (an entry's data, an agent's config overrides) goes through
:data:`JsonObject`: the same rule for every key and string inside it, numbers that fit the
databases (64-bit integers, finite floats) and a bounded depth."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

MAX_JSON_DEPTH = 32
MAX_INT = 2**63 - 1  # BIGINT, and what every JSON consumer reads exactly
_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def unsafe_text_reason(value: str) -> str | None:
    """Why ``value`` cannot be stored and returned as text, or ``None`` when it can."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain a NUL character (\\u0000)"
    return "must not contain a lone surrogate (\\ud800–\\udfff): send valid Unicode"


def check_text(value: str) -> str:
    reason = unsafe_text_reason(value)
    if reason is not None:
        raise ValueError(f"text {reason}")
    return value


def json_problem(value: object, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The first reason ``value`` (parsed JSON) cannot be stored, naming where, or ``None``.
    Iterative, so a hostile nesting depth costs no recursion."""
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        place = where or "the value"
        if isinstance(item, str):
            reason = unsafe_text_reason(item)
            if reason is not None:
                return f"text at {place} {reason}"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_INT:
                return f"the integer at {place} is outside the 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"the number at {place} is not finite"
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return f"{place} is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"a key at {place} is not text"
                    reason = unsafe_text_reason(key)
                    if reason is not None:
                        return f"a key at {place} {reason}"
                    stack.append((child, f"{where}.{key}" if where else key, depth + 1))
            else:
                stack.extend(
                    (child, f"{where}[{index}]", depth + 1) for index, child in enumerate(item)
                )
        else:
            return f"{place} is not a JSON value"
    return None


def check_json(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


SafeStr = Annotated[str, AfterValidator(check_text)]
"""Text without NUL characters or lone surrogates: the type of every text input."""

JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
"""A free-form JSON object whose keys and strings are :data:`SafeStr`, whose integers fit 64
bits, whose floats are finite and whose depth is at most :data:`MAX_JSON_DEPTH`."""

Slug = Annotated[
    SafeStr,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$"),
]


class StrictModel(BaseModel):
    """The base of every request body: unknown fields are errors, text is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
