"""The shape of an agent's effective configuration. Unknown keys are errors, so a misspelt key
in a config file is reported instead of silently ignored. Built-in defaults come from here."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from switchboard.directory.config import DirectoryConfig, DirectoryName


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettingsConfig(_Strict):
    max_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)


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

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(default=5, ge=1, le=10_000)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    queue_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    models: dict[str, ModelLimits] = Field(default_factory=dict)
    continuous_usage_stats: bool = Field(
        default=False,
        description="The endpoint reports cumulative usage in every stream chunk (vLLM, the "
        "fake provider); a stream cut short then keeps its exact partial usage.",
    )


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


class EffectiveConfig(_Strict):
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "demo"
    system_prompt: str = "You are a helpful assistant."
    tools: list[str] = Field(default_factory=list)
    custom_tools: dict[str, str] = Field(
        default_factory=dict, description="tool name → 'package.module:function'"
    )
    model_settings: ModelSettingsConfig = ModelSettingsConfig()
    memory: MemoryConfig = MemoryConfig()
    tool_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    request_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    ledger: LedgerConfig = LedgerConfig()
    retry: RetryConfig = RetryConfig()
    budget: BudgetConfig | None = None
    directories: dict[DirectoryName, DirectoryConfig] = Field(
        default_factory=dict,
        description="The account's directory schemas (global.yaml or account.yaml only)",
    )


def builtin_defaults() -> dict[str, Any]:
    return EffectiveConfig().model_dump(mode="json")
