"""Which limits a provider call is subject to, from the agent's effective config."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.registry.config_schema import EffectiveConfig, ProviderConfig

LOCAL_PROVIDER = "switchboard"  # the offline demo model: nothing upstream to protect


@dataclass(frozen=True, slots=True)
class LimitSpec:
    key: str  # "provider" or "provider/model"
    max_concurrency: int | None
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class Admission:
    """The limits of one call, acquired in order (provider first, then model)."""

    specs: tuple[LimitSpec, ...]
    queue_timeout_s: float


def admission_for(config: EffectiveConfig, *, provider: str, model: str) -> Admission:
    if provider == LOCAL_PROVIDER:
        return Admission(specs=(), queue_timeout_s=0)
    settings = config.providers.get(provider) or ProviderConfig()
    specs = [LimitSpec(provider, settings.max_concurrency, settings.rpm, settings.tpm)]
    model_limits = settings.models.get(model)
    if model_limits is not None:
        specs.append(
            LimitSpec(
                f"{provider}/{model}",
                model_limits.max_concurrency,
                model_limits.rpm,
                model_limits.tpm,
            )
        )
    return Admission(specs=tuple(specs), queue_timeout_s=settings.queue_timeout_s)
