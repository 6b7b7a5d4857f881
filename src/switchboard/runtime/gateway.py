"""The gateway: the one way to a provider. Every model Switchboard calls — a chat step, a run,
a summary, a discussion's participant — is built here, behind the admission path of
:mod:`switchboard.runtime.admission` (limits, retries, budget, write-ahead ledger)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydantic_ai.models.openai import OpenAIChatModelSettings

from switchboard.config.schema import EffectiveConfig
from switchboard.db.uow import AccountScope
from switchboard.ledger.service import CallContext, LedgerService
from switchboard.metrics import Metrics
from switchboard.retry import RetryPolicy
from switchboard.runtime.admission import CallRecord, OnRetry, Traffic
from switchboard.runtime.ledgered import LedgeredModel
from switchboard.runtime.models import BuiltModel, ModelFactory
from switchboard.traffic.limiter import Limiter
from switchboard.traffic.limits import admission_for


class Gateway:
    def __init__(
        self,
        *,
        limiter: Limiter,
        ledger: LedgerService,
        models: ModelFactory,
        metrics: Metrics | None = None,
    ) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self.models = models
        self.metrics = metrics

    def model_for(
        self,
        scope: AccountScope,
        config: EffectiveConfig,
        *,
        kind: str,
        run_id: uuid.UUID,
        on_call: Callable[[CallRecord], None],
        agent_id: uuid.UUID | None = None,
        agent_slug: str | None = None,
        conversation_id: uuid.UUID | None = None,
        built: BuiltModel | None = None,
        buffered: bool = False,
        on_retry: OnRetry | None = None,
        on_open: Callable[[uuid.UUID], None] | None = None,
    ) -> LedgeredModel:
        """The model of ``config`` behind the one admission path: limits, retries, budget and
        the write-ahead ledger. Every provider call Switchboard makes goes through one."""
        built = built or self.models.build(config)
        retry = config.retry
        traffic = Traffic(
            limiter=self.limiter,
            admission=admission_for(
                config, provider=built.provider, model=built.name, account=str(scope.id)
            ),
            retry=RetryPolicy(
                attempts=retry.attempts,
                base_s=retry.base_s,
                cap_s=retry.cap_s,
                max_total_s=retry.deadline_s,
            ),
            max_tokens=config.model_settings.max_tokens,
            metrics=self.metrics,
            buffered=buffered,
        )
        ctx = CallContext(
            scope=scope,
            run_id=run_id,
            provider=built.provider,
            model=built.name,
            kind=kind,
            agent_id=agent_id,
            agent_slug=agent_slug,
            conversation_id=conversation_id,
            timeout_s=config.request_timeout_s,
            store_bodies=config.ledger.store_bodies,
            prices=config.prices,
        )
        return LedgeredModel(
            built.model,
            ledger=self.ledger,
            ctx=ctx,
            traffic=traffic,
            on_call=on_call,
            on_retry=on_retry,
            on_open=on_open,
        )

    def settings_for(
        self, config: EffectiveConfig, overrides: Mapping[str, Any] | None = None
    ) -> OpenAIChatModelSettings:
        """The agent's model settings, with a client's ``overrides`` of the keys the agent lets
        clients set (``openai.overrides``; checked by the caller)."""
        chosen = config.model_settings.model_dump() | dict(overrides or {})
        settings = OpenAIChatModelSettings(max_tokens=chosen["max_tokens"])
        if chosen["temperature"] is not None:
            settings["temperature"] = chosen["temperature"]
        if chosen["top_p"] is not None:
            settings["top_p"] = chosen["top_p"]
        if self.models.continuous_usage(config):  # ignored by non-OpenAI models
            settings["openai_continuous_usage_stats"] = True
        return settings
