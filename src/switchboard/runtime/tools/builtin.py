"""Built-in tools, enabled per agent by name in ``tools:``."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.tools import ToolPrepareFunc

from switchboard.runtime.tools.context import ToolContext
from switchboard.runtime.tools.directory import (
    get_directory_entry,
    prepare_directory_tool,
    search_directory,
)


async def current_time(ctx: RunContext[ToolContext]) -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_EXPRESSION = re.compile(r"[\d.][\d.\s+\-*/%()^]*[\d)]")


async def calculate(ctx: RunContext[ToolContext], expression: str) -> str:
    """Evaluate an arithmetic expression such as ``(2 + 3) * 4``."""
    match = _EXPRESSION.search(expression)
    if match is None:
        return f"no arithmetic expression found in {expression!r}"
    text = match.group(0).replace("^", "**")
    tree = ast.parse(text, mode="eval")
    value = _evaluate(tree.body)
    return f"{text.strip()} = {value:g}"


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large")
        return float(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](_evaluate(node.operand)))
    raise ValueError("only numbers and + - * / % ** ( ) are allowed")


async def remember(ctx: RunContext[ToolContext], key: str, value: str) -> str:
    """Remember ``value`` under ``key`` for this agent (kept across conversations)."""
    deps = ctx.deps
    await deps.memories.remember(deps.account, agent=deps.agent_slug, key=key[:200], value=value)
    return f"remembered {key[:200]!r}"


async def recall(ctx: RunContext[ToolContext], key: str) -> str:
    """Recall what was remembered under ``key``."""
    deps = ctx.deps
    value = await deps.memories.recall(deps.account, agent=deps.agent_slug, key=key[:200])
    return value if value is not None else f"nothing remembered under {key[:200]!r}"


BUILTIN_TOOLS: dict[str, Callable[..., Any]] = {
    "current_time": current_time,
    "calculate": calculate,
    "remember": remember,
    "recall": recall,
    "search_directory": search_directory,
    "get_directory_entry": get_directory_entry,
}

# Built-in tools whose definition the model sees depends on the account (its directories).
BUILTIN_PREPARE: dict[str, ToolPrepareFunc[ToolContext]] = {
    "search_directory": prepare_directory_tool,
    "get_directory_entry": prepare_directory_tool,
}
