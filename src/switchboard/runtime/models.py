"""Model construction from an agent's effective config.

* ``demo`` — the offline model;
* ``<provider>:<model>`` where ``<provider>`` is declared under ``providers:`` with a
  ``base_url`` — any OpenAI-compatible endpoint (Ollama, vLLM, OpenRouter, the fake provider);
* ``openai:<model>`` — OpenAI itself, key from ``OPENAI_API_KEY``;
* any other Pydantic AI model string (``anthropic:…``, ``google-gla:…``, ``groq:…``).

API keys come from the environment only, are never stored and never logged. OpenAI clients are
built with ``max_retries=0``: retrying is Switchboard's job, so every attempt has a ledger row.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass

from openai import AsyncOpenAI
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import KnownModelName, Model, infer_model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from switchboard.config.cascade import ConfigProblem
from switchboard.config.roles import model_allowed, model_not_allowed
from switchboard.config.schema import EffectiveConfig
from switchboard.errors import ProviderMisconfigured
from switchboard.runtime.demo import demo_model

# Providers Pydantic AI knows by name (``anthropic:…``, ``groq:…``), read from its own list of
# known models, so a model string can be checked without importing any provider SDK.
KNOWN_PROVIDERS = frozenset(
    name.partition(":")[0] for name in typing.get_args(KnownModelName.__value__) if ":" in name
)


def check_model(config: EffectiveConfig) -> list[ConfigProblem]:
    """Problems with the config's model string, for registration and ``apply``: the same
    rules :meth:`ModelFactory.build` follows, without building anything."""
    spec = config.model
    if spec == "demo":
        return []
    prefix, _, name = spec.partition(":")
    if not prefix or not name:
        return [ConfigProblem("", "model", f"'{spec}' is neither 'demo' nor '<provider>:<model>'")]
    declared = config.providers.get(prefix)
    if declared is not None:
        if declared.base_url is None:
            return [ConfigProblem("", f"providers.{prefix}.base_url", "required for a model")]
        return []
    if prefix not in KNOWN_PROVIDERS:
        return [
            ConfigProblem(
                "",
                "model",
                f"unknown provider '{prefix}': declare it under providers (by the operator) or "
                "use one Pydantic AI knows (openai, anthropic, google, groq, …)",
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class BuiltModel:
    model: Model
    provider: str
    name: str
    continuous_usage: bool = False


class ModelFactory:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, float], AsyncOpenAI] = {}
        # Models are stateless between requests: one per (model, endpoint, key, timeout).
        self._models: dict[tuple[str, str, str, float, bool], BuiltModel] = {}

    def build(self, config: EffectiveConfig) -> BuiltModel:
        spec = config.model
        if not model_allowed(config):
            raise model_not_allowed(spec)
        if spec == "demo":
            return BuiltModel(demo_model(), "switchboard", "demo")
        prefix, _, name = spec.partition(":")
        if not name:
            raise ProviderMisconfigured(
                f"model '{spec}' is neither 'demo' nor '<provider>:<model>'"
            )
        timeout = config.request_timeout_s
        if prefix in config.providers:
            provider = config.providers[prefix]
            if provider.base_url is None:
                raise ProviderMisconfigured(f"provider '{prefix}' has no base_url")
            api_key = self._key(prefix, provider.api_key_env, required=False)
            key = (spec, provider.base_url, api_key, timeout, provider.continuous_usage_stats)
            built = self._models.get(key)
            if built is None:
                client = self._client(provider.base_url, api_key, timeout)
                built = self._models[key] = BuiltModel(
                    OpenAIChatModel(name, provider=OpenAIProvider(openai_client=client)),
                    prefix,
                    name,
                    continuous_usage=provider.continuous_usage_stats,
                )
            return built
        if prefix == "openai":
            api_key = self._key(prefix, "OPENAI_API_KEY", required=True)
            client = self._client("https://api.openai.com/v1", api_key, timeout)
            return BuiltModel(
                OpenAIChatModel(name, provider=OpenAIProvider(openai_client=client)), prefix, name
            )
        try:
            return BuiltModel(infer_model(spec), prefix, name)
        except (UserError, ValueError, ImportError) as exc:
            raise ProviderMisconfigured(f"cannot use model '{spec}': {exc}") from exc

    @staticmethod
    def continuous_usage(config: EffectiveConfig) -> bool:
        provider = config.providers.get(config.model.partition(":")[0])
        return provider is not None and provider.continuous_usage_stats

    @staticmethod
    def _key(provider: str, env: str | None, *, required: bool) -> str:
        if env is None:
            return "not-needed"
        value = os.environ.get(env)
        if value:
            return value
        if required or env:
            raise ProviderMisconfigured(
                f"provider '{provider}' needs an API key: set the environment variable {env}"
            )
        return "not-needed"  # pragma: no cover

    def _client(self, base_url: str, api_key: str, timeout: float) -> AsyncOpenAI:
        key = (base_url, api_key, timeout)
        client = self._clients.get(key)
        if client is None:
            client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self._models.clear()
