"""``GET /metrics`` (Prometheus text format) and the HTTP request middleware."""

from __future__ import annotations

import contextlib
import time

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.api.deps import ContainerDep, require_metrics_access
from switchboard.errors import SwitchboardError
from switchboard.metrics import Metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (the admin key or SWITCHBOARD_METRICS_TOKEN)",
    response_class=Response,
    dependencies=[Depends(require_metrics_access)],
)
async def metrics(container: ContainerDep) -> Response:
    m = container.metrics
    for key, (in_use, queued) in container.limiter.snapshot().items():
        m.provider_in_flight.labels(key).set(in_use)
        m.provider_queued.labels(key).set(queued)
    pool = container.engine.pool
    m.pool_checked_out.set(getattr(pool, "checkedout", lambda: 0)())
    m.pool_overflow.set(max(getattr(pool, "overflow", lambda: 0)(), 0))

    # If the database is busy, keep the last value rather than fail the scrape.
    with contextlib.suppress(SwitchboardError):
        m.ledger_pending.set(await container.ledger.pending_count())
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts requests by route template (not raw path), method and status, and times them."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.http_requests.labels(template, method, str(status)).inc()
            self.metrics.http_latency.labels(template, method).observe(
                time.perf_counter() - started
            )
