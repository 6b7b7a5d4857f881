"""The one composition root: engine, unit-of-work factory and services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard.conversations.service import ConversationService
from switchboard.db.engine import create_engine, ensure_sqlite_directory
from switchboard.db.uow import UnitOfWorkFactory
from switchboard.directory.embedding import build_embedder
from switchboard.directory.service import DirectoryService
from switchboard.discussion.service import DiscussionService
from switchboard.ledger.leases import OwnerLease
from switchboard.ledger.service import LedgerService
from switchboard.ledger.sweeper import Sweeper
from switchboard.memories.service import MemoryService
from switchboard.metrics import LoopLagMonitor, Metrics
from switchboard.registry.service import AgentService
from switchboard.retry import RetryPolicy
from switchboard.runs.service import RunService
from switchboard.runtime.chat import ChatService
from switchboard.runtime.gate import RunGate
from switchboard.runtime.gateway import Gateway
from switchboard.runtime.models import ModelFactory, check_model
from switchboard.runtime.runs import RunManager
from switchboard.runtime.tools.registry import check_tools
from switchboard.settings import Settings
from switchboard.telemetry import DISABLED, Telemetry
from switchboard.tenancy.service import TenancyService
from switchboard.traffic.budgets import BudgetService
from switchboard.traffic.db_limiter import DatabaseLimiter
from switchboard.traffic.limiter import InProcessLimiter, Limiter


@dataclass(frozen=True, slots=True)
class Container:
    settings: Settings
    engine: AsyncEngine
    uow: UnitOfWorkFactory
    tenancy: TenancyService
    agents: AgentService
    conversations: ConversationService
    ledger: LedgerService
    models: ModelFactory
    chat: ChatService
    runs: RunManager
    sweeper: Sweeper
    budgets: BudgetService
    limiter: Limiter
    metrics: Metrics
    loop_lag: LoopLagMonitor
    discussions: DiscussionService
    directories: DirectoryService
    telemetry: Telemetry = DISABLED

    async def aclose(self) -> None:
        await self.loop_lag.stop()
        await self.runs.stop()  # this process's runs end interrupted, their spend recorded
        await self.sweeper.stop()
        await self.ledger.drain()
        await self.ledger.lease.release()  # after the settlements: nothing of ours is pending
        await self.models.aclose()
        await self.limiter.aclose()
        await self.engine.dispose()
        await asyncio.to_thread(self.telemetry.close)  # the last spans exported (blocking)


async def build_container(
    settings: Settings, *, metrics: Metrics | None = None, telemetry: Telemetry = DISABLED
) -> Container:
    await asyncio.to_thread(ensure_sqlite_directory, settings.database_url)
    engine = await asyncio.to_thread(create_engine, settings)  # touches the file system
    uow = UnitOfWorkFactory(
        engine,
        retry=RetryPolicy(
            attempts=settings.db_retry_attempts,
            base_s=settings.db_retry_base_s,
            max_total_s=settings.db_retry_max_total_s,
        ),
        lock_timeout_s=max(settings.sqlite_busy_timeout_ms / 1000, 0.1),
        insist_max_s=settings.db_insist_max_s,
    )
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    agents = AgentService(uow, checks=(check_tools, check_model))
    conversations = ConversationService(uow)
    metrics = metrics or Metrics()
    lease = OwnerLease(
        uow, ttl_s=settings.ledger_lease_ttl_s, heartbeat_s=settings.ledger_heartbeat_interval_s
    )
    ledger = LedgerService(uow, lease=lease, registry=metrics.registry)
    models = ModelFactory()
    limiter = build_limiter(settings, uow=uow)
    embedder = await asyncio.to_thread(build_embedder, settings.embedder)  # looks for the extra
    directories = DirectoryService(uow, embedder=embedder)
    gateway = Gateway(limiter=limiter, ledger=ledger, models=models, metrics=metrics)
    chat = ChatService(
        uow=uow,
        agents=agents,
        conversations=conversations,
        gateway=gateway,
        memories=MemoryService(uow),
        directories=directories,
        telemetry=telemetry,
    )
    runs = RunManager(
        runs=RunService(uow),
        chat=chat,
        lease=lease,
        gate=RunGate(
            active=settings.max_active_runs or (128 if settings.is_sqlite else 256),
            queued=settings.run_queue_max,
            wait_s=settings.run_queue_timeout_s,
        ),
        key_ttl_s=settings.run_idempotency_ttl_s,
        poll_s=settings.run_poll_interval_s,
        sweep_interval_s=settings.ledger_sweep_interval_s,
        telemetry=telemetry,
    )
    return Container(
        settings=settings,
        engine=engine,
        uow=uow,
        tenancy=TenancyService(uow, admin_key=admin_key),
        agents=agents,
        conversations=conversations,
        ledger=ledger,
        models=models,
        chat=chat,
        runs=runs,
        sweeper=Sweeper(ledger, interval_s=settings.ledger_sweep_interval_s),
        budgets=BudgetService(uow),
        limiter=limiter,
        metrics=metrics,
        loop_lag=LoopLagMonitor(metrics.loop_lag),
        discussions=DiscussionService(agents=agents, gateway=gateway, telemetry=telemetry),
        directories=directories,
        telemetry=telemetry,
    )


def build_limiter(settings: Settings, *, uow: UnitOfWorkFactory) -> Limiter:
    """In-process limits by default; shared across processes through Redis when
    SWITCHBOARD_REDIS_URL is set, else through the database when SWITCHBOARD_SHARED_LIMITS is."""
    if settings.redis_url is not None:
        from switchboard.traffic.redis_limiter import RedisLimiter

        return RedisLimiter(settings.redis_url)
    if settings.shared_limits:
        return DatabaseLimiter(uow)
    return InProcessLimiter()
