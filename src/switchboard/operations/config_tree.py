"""Read a config tree from disk and check it completely before anything is applied.

    configs/global.yaml                      optional; applies to every agent
    configs/<account>/account.yaml           optional; ``name:`` plus account-wide config
    configs/<account>/<agent>/config.yaml    required; the agent's profile plus its config

Anything else (a misplaced or misspelt file, a stray folder) is a problem, never ignored.
This module does blocking file I/O: call it from the CLI, not from the event loop.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from switchboard.config import cascade
from switchboard.config.bounds import load_yaml
from switchboard.config.cascade import ConfigProblem
from switchboard.config.schema import EffectiveConfig
from switchboard.registry.schemas import PROFILE_FIELDS, AgentCreate

GLOBAL_FILE = "global.yaml"
ACCOUNT_FILE = "account.yaml"
AGENT_FILE = "config.yaml"
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class AgentSpec:
    slug: str
    profile: AgentCreate
    layer: cascade.Layer


@dataclass(slots=True)
class AccountSpec:
    slug: str
    name: str
    layer: cascade.Layer | None
    agents: list[AgentSpec] = field(default_factory=list)


@dataclass(slots=True)
class ConfigTree:
    global_layer: cascade.Layer | None
    accounts: list[AccountSpec]


class ConfigTreeInvalid(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


Check = Callable[[EffectiveConfig], list[ConfigProblem]]


def load_tree(root: Path, *, checks: Sequence[Check] = ()) -> ConfigTree:
    """The whole tree, or :class:`ConfigTreeInvalid` listing every problem found. ``checks``
    run on each agent's valid effective config (the registration checks: tools, models)."""
    problems: list[ConfigProblem] = []
    if not root.is_dir():
        raise ConfigTreeInvalid([ConfigProblem(str(root), "(path)", "not a directory")])
    global_layer = None
    accounts: list[AccountSpec] = []
    for entry in _visible(root):
        if entry.is_dir():
            account = _load_account(entry, problems)
            if account is not None:
                accounts.append(account)
        elif entry.name == GLOBAL_FILE:
            data = _read_yaml(entry, problems)
            if data is not None and "budget" in data:
                problems.append(
                    ConfigProblem(
                        str(entry),
                        "budget",
                        "budgets belong in an account.yaml or an agent's config.yaml",
                    )
                )
            global_layer = cascade.Layer(str(entry), data) if data is not None else None
        else:
            problems.append(_misplaced(entry, expected=[GLOBAL_FILE], level="the config root"))
    for account in accounts:
        for agent in account.agents:
            layers = [layer for layer in (global_layer, account.layer, agent.layer) if layer]
            merged = cascade.merge(layers)
            config, found = cascade.validate(merged)
            problems.extend(found)
            if config is None:
                continue
            for check in checks:
                problems.extend(
                    replace(p, source=cascade.source_of(merged, p.key)) for p in check(config)
                )
    if problems:
        raise ConfigTreeInvalid(_unique(problems))
    return ConfigTree(global_layer=global_layer, accounts=accounts)


def _load_account(folder: Path, problems: list[ConfigProblem]) -> AccountSpec | None:
    if not SLUG.match(folder.name):
        problems.append(
            ConfigProblem(
                str(folder),
                "(folder)",
                "account folder names must be slugs: lowercase letters, digits, '-' and '_'",
            )
        )
        return None
    name, layer = folder.name, None
    agents: list[AgentSpec] = []
    for entry in _visible(folder):
        if entry.is_dir():
            agent = _load_agent(entry, problems)
            if agent is not None:
                agents.append(agent)
        elif entry.name == ACCOUNT_FILE:
            data = _read_yaml(entry, problems)
            if data is not None:
                raw_name = data.pop("name", folder.name)
                if not isinstance(raw_name, str) or not raw_name.strip():
                    problems.append(ConfigProblem(str(entry), "name", "must be a non-empty text"))
                else:
                    name = raw_name.strip()
                layer = cascade.Layer(str(entry), data)
        else:
            problems.append(_misplaced(entry, expected=[ACCOUNT_FILE], level="an account folder"))
    return AccountSpec(slug=folder.name, name=name, layer=layer, agents=agents)


def _load_agent(folder: Path, problems: list[ConfigProblem]) -> AgentSpec | None:
    config_file = folder / AGENT_FILE
    for entry in _visible(folder):
        if entry.is_dir():
            problems.append(
                ConfigProblem(
                    str(entry),
                    "(folder)",
                    f"agent folders hold only {AGENT_FILE}; nested folders are not read",
                )
            )
        elif entry.name != AGENT_FILE:
            problems.append(_misplaced(entry, expected=[AGENT_FILE], level="an agent folder"))
    if not config_file.is_file():
        problems.append(
            ConfigProblem(
                str(config_file), "(file)", f"missing: every agent folder needs {AGENT_FILE}"
            )
        )
        return None
    data = _read_yaml(config_file, problems)
    if data is None:
        return None
    if "directories" in data:
        problems.append(
            ConfigProblem(
                str(config_file),
                "directories",
                "directories belong to an account: declare them in account.yaml or global.yaml",
            )
        )
    profile = {key: data.pop(key) for key in PROFILE_FIELDS if key in data}
    try:
        spec = AgentCreate.model_validate({"slug": folder.name, **profile})
    except ValidationError as exc:
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"])
            where = "(folder name)" if key == "slug" else key
            problems.append(ConfigProblem(str(config_file), where, error["msg"]))
        return None
    return AgentSpec(slug=folder.name, profile=spec, layer=cascade.Layer(str(config_file), data))


def _read_yaml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problems.append(ConfigProblem(str(path), where, f"invalid YAML: {exc}"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(str(path), "(file)", f"cannot read: {exc}"))
        return None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        problems.append(ConfigProblem(str(path), "(file)", "must be a mapping of keys to values"))
        return None
    return data


def _misplaced(entry: Path, *, expected: list[str], level: str) -> ConfigProblem:
    hint = ""
    if entry.name == AGENT_FILE:
        hint = f"; {AGENT_FILE} belongs in an agent folder (configs/<account>/<agent>/config.yaml)"
    elif entry.name == ACCOUNT_FILE:
        hint = f"; {ACCOUNT_FILE} belongs in an account folder (configs/<account>/account.yaml)"
    elif entry.name == GLOBAL_FILE:
        hint = f"; {GLOBAL_FILE} belongs at the config root"
    else:
        close = difflib.get_close_matches(entry.name, expected, n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean {close[0]}?"
    return ConfigProblem(
        str(entry), "(file)", f"unexpected file in {level} (expected {', '.join(expected)}){hint}"
    )


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))
