"""Which limits a provider call is subject to, from the agent's effective config.

Limits belong to the endpoint the operator declared, not to its name: the limiter key of a
declared provider is its name plus a digest of the whole declaration (base URL, credentials
variable, limits), so two declarations that share a name — in two accounts' config files, say —
never share, or swap, each other's slots. Providers used by name only (``openai:…``,
``anthropic:…``) are keyed by that name. ``per_account_max_concurrency`` adds a slot per account
inside the provider's, taken first, so one account's queue waits on its own share and never in
front of another account's calls.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from switchboard.config.schema import EffectiveConfig, ProviderConfig

LOCAL_PROVIDER = "switchboard"  # the offline demo model: nothing upstream to protect


@dataclass(frozen=True, slots=True)
class LimitSpec:
    key: str  # "provider[@digest]", "…/model" or "…/account/<id>"
    max_concurrency: int | None
    rpm: int | None
    tpm: int | None
    # What /metrics calls it: the operator's name for the provider (or provider/model); None
    # for per-account shares (an account per label would be unbounded).
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The limits of one call, acquired in order (account share, provider, then model)."""

    specs: tuple[LimitSpec, ...]
    queue_timeout_s: float


def endpoint_key(provider: str, declared: ProviderConfig | None) -> str:
    if declared is None:
        return provider
    canonical = json.dumps(declared.model_dump(mode="json"), sort_keys=True)
    return f"{provider}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def admission_for(config: EffectiveConfig, *, provider: str, model: str, account: str) -> Admission:
    if provider == LOCAL_PROVIDER:
        return Admission(specs=(), queue_timeout_s=0)
    declared = config.providers.get(provider)
    settings = declared or ProviderConfig()
    endpoint = endpoint_key(provider, declared)
    specs: list[LimitSpec] = []
    if settings.per_account_max_concurrency is not None:
        specs.append(
            LimitSpec(
                f"{endpoint}/account/{account}",
                settings.per_account_max_concurrency,
                None,
                None,
            )
        )
    specs.append(
        LimitSpec(endpoint, settings.max_concurrency, settings.rpm, settings.tpm, label=provider)
    )
    model_limits = settings.models.get(model)
    if model_limits is not None:
        specs.append(
            LimitSpec(
                f"{endpoint}/{model}",
                model_limits.max_concurrency,
                model_limits.rpm,
                model_limits.tpm,
                label=f"{provider}/{model}",
            )
        )
    return Admission(specs=tuple(specs), queue_timeout_s=settings.queue_timeout_s)
