"""Prometheus metrics. One registry per app (so several apps in one process stay apart)."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from switchboard.errors import SwitchboardError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "switchboard_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "switchboard_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_in_flight = Gauge(
            "switchboard_provider_calls_in_flight",
            "Provider calls holding a slot (this process)",
            ["provider"],
            registry=r,
        )
        self.provider_queued = Gauge(
            "switchboard_provider_calls_queued",
            "Provider calls waiting for a slot (this process)",
            ["provider"],
            registry=r,
        )
        self.limiter_wait = Histogram(
            "switchboard_limiter_wait_seconds",
            "Time a provider call waited for admission",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_retries = Counter(
            "switchboard_provider_retries",
            "Provider call retries",
            ["error_class", "code"],
            registry=r,
        )
        self.budget_refusals = Counter(
            "switchboard_budget_refusals", "Provider calls refused by a budget", registry=r
        )
        self.ledger_pending = Gauge(
            "switchboard_ledger_rows_pending",
            "Ledger rows still pending (all processes)",
            registry=r,
        )
        self.pool_checked_out = Gauge(
            "switchboard_db_pool_checked_out", "Database connections in use", registry=r
        )
        self.pool_overflow = Gauge(
            "switchboard_db_pool_overflow", "Database connections beyond pool_size", registry=r
        )
        self.loop_lag = Gauge(
            "switchboard_event_loop_lag_seconds",
            "How late the event loop ran a 0.25 s timer, last sample",
            registry=r,
        )

    def retried(self, error: SwitchboardError) -> None:
        self.provider_retries.labels(error.kind, error.code).inc()

    def admitted(self, provider: str, waited_s: float) -> None:
        self.limiter_wait.labels(provider).observe(waited_s)

    def budget_refused(self) -> None:
        self.budget_refusals.inc()


class LoopLagMonitor:
    """Samples how late the event loop wakes a timer: a blocked loop shows up here."""

    def __init__(self, gauge: Gauge, *, interval_s: float = 0.25) -> None:
        self._gauge = gauge
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag-monitor")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self._interval_s)
            self._gauge.set(max(loop.time() - started - self._interval_s, 0.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
