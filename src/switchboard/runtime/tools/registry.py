"""Resolve an agent's ``tools:`` to callables: built-ins by name, custom tools by import path
(``custom_tools: {name: "package.module:function"}``). Every tool is wrapped so that an exception
or a timeout becomes a tool error the model sees, never a broken turn."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_ai import Tool

from switchboard.config.cascade import ConfigProblem
from switchboard.config.schema import EffectiveConfig
from switchboard.errors import ConfigurationError
from switchboard.runtime.tools.builtin import BUILTIN_PREPARE, BUILTIN_TOOLS
from switchboard.runtime.tools.context import ToolContext

log = logging.getLogger("switchboard.tools")


def module_allowed(module_name: str, allowed: Sequence[str]) -> bool:
    """``module_name`` is one of the operator's ``tool_modules`` or a submodule of one."""
    return any(module_name == m or module_name.startswith(f"{m}.") for m in allowed)


def load_import_path(path: str, *, allowed_modules: Sequence[str]) -> Callable[..., Any]:
    """The plain Python function at ``package.module:function``. The module must be allowed by
    the operator *before* it is imported (importing runs its code); builtins, C functions,
    classes, partials and names re-exported from other modules are refused."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"custom tool '{path}': expected 'package.module:function'")
    if not module_allowed(module_name, allowed_modules):
        raise ConfigurationError(
            f"custom tool '{path}': module '{module_name}' is not in the operator's "
            "tool_modules allow-list"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"custom tool '{path}': cannot import {module_name}: {exc}"
        ) from exc
    function = getattr(module, attribute, None)
    if function is None or not callable(function):
        raise ConfigurationError(
            f"custom tool '{path}': {module_name} has no function '{attribute}'"
        )
    if not inspect.isfunction(function):
        raise ConfigurationError(
            f"custom tool '{path}': '{attribute}' is a {type(function).__name__}, not a plain "
            "Python function"
        )
    if function.__module__ != module_name:
        raise ConfigurationError(
            f"custom tool '{path}': '{attribute}' is defined in {function.__module__}, not in "
            f"{module_name} (only functions defined in an allowed module are tools)"
        )
    return function


def check_tools(config: EffectiveConfig) -> list[ConfigProblem]:
    """Problems with an agent's tools (unknown names, modules outside the allow-list, broken
    import paths, not plain functions), for config checks."""
    problems: list[ConfigProblem] = []
    for name, path in config.custom_tools.items():
        try:
            load_import_path(path, allowed_modules=config.tool_modules)
        except ConfigurationError as exc:
            problems.append(ConfigProblem("", f"custom_tools.{name}", exc.message))
    known = {*BUILTIN_TOOLS, *config.custom_tools}
    for index, name in enumerate(config.tools):
        if name not in known:
            problems.append(
                ConfigProblem(
                    "",
                    f"tools.{index}",
                    f"unknown tool '{name}' (built-in: {', '.join(sorted(BUILTIN_TOOLS))}; "
                    "the operator declares others under custom_tools)",
                )
            )
    return problems


def resolve(config: EffectiveConfig) -> dict[str, Callable[..., Any]]:
    """Name → function for every tool the agent enables; any problem :func:`check_tools`
    reports is a configuration error."""
    problems = check_tools(config)
    if problems:
        listed = [f"{p.key}: {p.message}" for p in problems]
        raise ConfigurationError(
            "; ".join(listed), code="INVALID_TOOLS", details={"problems": listed}
        )
    return {
        name: load_import_path(config.custom_tools[name], allowed_modules=config.tool_modules)
        if name in config.custom_tools
        else BUILTIN_TOOLS[name]
        for name in config.tools
    }


def build_tools(
    functions: Mapping[str, Callable[..., Any]], *, timeout_s: float
) -> list[Tool[ToolContext]]:
    return [
        Tool(
            _guarded(name, fn, timeout_s),
            name=name,
            prepare=BUILTIN_PREPARE.get(name) if fn is BUILTIN_TOOLS.get(name) else None,
        )
        for name, fn in functions.items()
    ]


def _guarded(name: str, function: Callable[..., Any], timeout_s: float) -> Callable[..., Any]:
    is_async = inspect.iscoroutinefunction(function)

    @functools.wraps(function)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(timeout_s):
                if is_async:
                    return await function(*args, **kwargs)
                return await asyncio.to_thread(function, *args, **kwargs)
        except TimeoutError:
            log.warning("tool %s timed out after %.1f s", name, timeout_s)
            return f"ERROR: tool '{name}' timed out after {timeout_s:g} s"
        except Exception as exc:
            log.warning("tool %s failed: %s: %s", name, type(exc).__name__, exc)
            return f"ERROR: tool '{name}' failed: {type(exc).__name__}: {exc}"

    return call
