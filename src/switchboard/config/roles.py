"""Who may set which config key: the one table of roles, read from the config schema.

The operator (config tree, admin key, CLI) decides what code runs, where requests go, with which
credentials, at what price and with how much capacity. A tenant (an account key) configures its
own agents with the ``tenant`` keys, and nothing else: an account key that adds, changes or
removes an ``operator`` key of an agent's overrides gets 403 ``OPERATOR_SETTING`` and nothing is
written. Timeouts are tenant keys only up to the operator's ``ceilings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, Literal, cast

from switchboard.config.schema import EffectiveConfig, Role
from switchboard.errors import Forbidden

Actor = Literal["operator", "tenant"]
CEILINGED = ("request_timeout_s", "tool_timeout_s")
_MISSING = object()


def _roles() -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for name, info in EffectiveConfig.model_fields.items():
        extra = info.json_schema_extra
        role = extra.get("role") if isinstance(extra, dict) else None
        if role not in ("operator", "tenant"):
            raise TypeError(f"config key '{name}' has no role")  # a schema bug: fail at import
        roles[name] = cast(Role, role)
    return roles


ROLES: Mapping[str, Role] = _roles()
OPERATOR_KEYS = tuple(sorted(k for k, r in ROLES.items() if r == "operator"))
TENANT_KEYS = tuple(sorted(k for k, r in ROLES.items() if r == "tenant"))


def role_of(key: str) -> Role | None:
    """The role of a dotted key; ``None`` for a key the schema does not know (validation
    rejects it with 422, whoever sends it)."""
    return ROLES.get(key.split(".", 1)[0])


def operator_setting(keys: list[str], *, why: str = "") -> Forbidden:
    listed = ", ".join(keys)
    return Forbidden(
        f"only the operator may set {listed}{why} (config files, the admin key or the CLI)",
        code="OPERATOR_SETTING",
        details={"keys": keys},
    )


def operator_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The operator keys whose value differs between two override mappings (added, changed or
    removed)."""
    return [
        key
        for key in sorted({*old, *new})
        if role_of(key) == "operator" and old.get(key, _MISSING) != new.get(key, _MISSING)
    ]


def check_ceilings(
    *,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    config: EffectiveConfig,
) -> None:
    """Raise 403 ``OPERATOR_SETTING`` if a tenant's write sets a timeout above the operator's
    ceiling. ``config`` is the effective config the write produces (its ``ceilings`` can only
    come from the operator). Operator keys themselves are checked first, by
    :func:`operator_changes`, before the write is validated."""
    above = [
        key
        for key in CEILINGED
        if key in new
        and new.get(key) != old.get(key)
        and getattr(config, key) > getattr(config.ceilings, key)
    ]
    if above:
        raise operator_setting(
            above,
            why=" above the operator's ceiling "
            + ", ".join(f"{k} ≤ {getattr(config.ceilings, k):g}" for k in above),
        )


def model_allowed(config: EffectiveConfig) -> bool:
    """Whether the config's model is in the operator's ``models.allowed``."""
    allowed = config.models.allowed
    return allowed is None or any(fnmatchcase(config.model, p) for p in allowed)


def model_not_allowed(model: str) -> Forbidden:
    return Forbidden(
        f"model '{model}' is not among the models the operator allows for this account",
        code="MODEL_NOT_ALLOWED",
    )
