"""The shape of an agent's effective configuration. Unknown keys are errors, so a misspelt key
in a config file is reported instead of silently ignored. Built-in defaults come from here.

Every top-level key has a **role** (``json_schema_extra={"role": …}``, read by
:mod:`switchboard.config.roles`): ``operator`` keys — code to load, endpoints, credentials,
prices, limits, retries, budgets, directory schemas, the ceilings themselves — come only from the
config tree, the admin key or the CLI; ``tenant`` keys may also be set with an account key, on
that account's own agents (timeouts only up to the operator's ``ceilings``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from switchboard.config.directories import DirectoryConfig, DirectoryName

Role = Literal["operator", "tenant"]
ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"


def _role(role: Role, **kwargs: Any) -> Any:
    return Field(json_schema_extra={"role": role}, **kwargs)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettingsConfig(_Strict):
    max_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)


class OpenAICompatConfig(_Strict):
    """How the agent answers on the OpenAI-compatible API (``/v1/chat/completions``)."""

    tool_calls: Literal["hidden", "reasoning", "details"] = Field(
        default="hidden",
        description="How the tool calls the server ran are shown to an OpenAI client (never as "
        "tool_calls, which it would try to run): not at all, as reasoning text "
        '(reasoning_content), or as the <details type="tool_calls"> blocks Open WebUI renders',
    )
    overrides: list[Literal["temperature", "top_p", "max_tokens"]] = Field(
        default_factory=list,
        max_length=3,
        description="Model settings a client's request may set; any other is refused",
    )


class MemoryConfig(_Strict):
    max_messages: int = Field(default=20, ge=1, le=1000)
    summarize: bool = True


class ModelLimits(_Strict):
    """Limits for one model of a provider, on top of the provider's own."""

    max_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class RetryConfig(_Strict):
    """Retries of transient provider errors (429, 5xx, timeouts, connection errors)."""

    attempts: int = Field(default=4, ge=1, le=20)
    base_s: float = Field(default=0.25, ge=0, le=60)
    cap_s: float = Field(default=8.0, ge=0, le=600)
    deadline_s: float = Field(default=60.0, gt=0, le=3600)


class ProviderConfig(_Strict):
    """An OpenAI-compatible endpoint (Ollama, vLLM, OpenRouter, the fake provider)."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None = (
        None
    )
    api_key_env: Annotated[str, StringConstraints(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="The environment variable holding this endpoint's key; never one of the "
        "server's own SWITCHBOARD_* variables.",
    )
    max_concurrency: int = Field(default=5, ge=1, le=10_000)
    per_account_max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="At most this many of the provider's slots held by one account at once, so "
        "one tenant cannot take them all.",
    )
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    queue_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    models: dict[str, ModelLimits] = Field(default_factory=dict)
    continuous_usage_stats: bool = Field(
        default=False,
        description="The endpoint reports cumulative usage in every stream chunk (vLLM, the "
        "fake provider); a stream cut short then keeps its exact partial usage.",
    )

    @field_validator("api_key_env")
    @classmethod
    def _not_a_server_secret(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("SWITCHBOARD_"):
            raise ValueError("SWITCHBOARD_* variables are the server's own, never a provider key")
        return value


class PriceConfig(_Strict):
    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)


class BudgetConfig(_Strict):
    """A spend limit, in account.yaml (the account's) or an agent's config.yaml (the agent's);
    ``switchboard apply`` writes it to the database, the source of truth."""

    limit_usd: Decimal = Field(ge=0, le=Decimal("1000000000"))
    period: Literal["day", "month"] = "month"


class LedgerConfig(_Strict):
    store_bodies: bool = False


class ModelPolicy(_Strict):
    allowed: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=1000,
        description="Model strings (shell-style patterns such as 'fake:*') the account's agents "
        "may use; null allows every model the server can reach.",
    )


class Ceilings(_Strict):
    """The most a tenant may set a timeout to (the operator may go above)."""

    request_timeout_s: float = Field(default=300.0, gt=0, le=3600)
    tool_timeout_s: float = Field(default=120.0, gt=0, le=3600)


class EffectiveConfig(_Strict):
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] = _role(
        "tenant", default="demo"
    )
    system_prompt: str = _role("tenant", default="You are a helpful assistant.")
    tools: list[str] = _role(
        "tenant",
        default_factory=list,
        description="Built-in tools and the custom tools the operator declared",
    )
    custom_tools: dict[str, str] = _role(
        "operator", default_factory=dict, description="tool name → 'package.module:function'"
    )
    tool_modules: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*$")]] = _role(
        "operator",
        default_factory=list,
        description="Modules (and their submodules) custom tools may be loaded from",
    )
    model_settings: ModelSettingsConfig = _role("tenant", default=ModelSettingsConfig())
    memory: MemoryConfig = _role("tenant", default=MemoryConfig())
    openai: OpenAICompatConfig = _role("tenant", default=OpenAICompatConfig())
    tool_timeout_s: float = _role("tenant", default=30.0, gt=0, le=3600)
    request_timeout_s: float = _role("tenant", default=120.0, gt=0, le=3600)
    ceilings: Ceilings = _role("operator", default=Ceilings())
    models: ModelPolicy = _role("operator", default=ModelPolicy())
    providers: dict[str, ProviderConfig] = _role("operator", default_factory=dict)
    prices: dict[str, PriceConfig] = _role("operator", default_factory=dict)
    ledger: LedgerConfig = _role("operator", default=LedgerConfig())
    retry: RetryConfig = _role("operator", default=RetryConfig())
    budget: BudgetConfig | None = _role("operator", default=None)
    directories: dict[DirectoryName, DirectoryConfig] = _role(
        "operator",
        default_factory=dict,
        description="The account's directory schemas (global.yaml or account.yaml only)",
    )


def builtin_defaults() -> dict[str, Any]:
    return EffectiveConfig().model_dump(mode="json")
