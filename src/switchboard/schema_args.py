"""Arguments for a tool call generated from its JSON schema and some text: used by the demo
model and the fake provider to call tools the way a real model would, deterministically."""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def args_for(schema: dict[str, Any], text: str) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or properties.keys())
    return {
        name: value_for(prop if isinstance(prop, dict) else {}, text, name)
        for name, prop in properties.items()
        if name in required
    }


def value_for(schema: dict[str, Any], text: str, name: str = "") -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        options = [
            o for o in schema.get(key, []) if isinstance(o, dict) and o.get("type") != "null"
        ]
        if options:
            return value_for(options[0], text, name)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    numbers = _NUMBER.findall(text)
    if kind == "integer":
        return int(float(numbers[0])) if numbers else 1
    if kind == "number":
        return float(numbers[0]) if numbers else 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return [value_for(schema.get("items") or {}, text, name)]
    if kind == "object":
        return args_for(schema, text)
    words = text.strip()
    return (words or name or "value")[:200]
