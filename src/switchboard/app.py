"""``create_app(settings)``: lifespan, middleware, routers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from switchboard import __version__
from switchboard.api import health
from switchboard.api import metrics as metrics_api
from switchboard.api.errors import ERROR_RESPONSES, install_error_handlers
from switchboard.api.limits import BodySizeLimit
from switchboard.api.metrics import RequestMetrics
from switchboard.api.request_ids import RequestIds
from switchboard.api.tracing import FASTAPI_TELEMETRY, RequestSpans
from switchboard.bootstrap import build_container
from switchboard.conversations.router import router as conversations_router
from switchboard.directory.router import IMPORT_ROUTE
from switchboard.directory.router import router as directories_router
from switchboard.discussion.router import router as discussions_router
from switchboard.ledger.router import router as ledger_router
from switchboard.mcp_server.endpoint import McpEndpoint
from switchboard.metrics import Metrics
from switchboard.openai_api.router import router as openai_router
from switchboard.registry.router import router as agents_router
from switchboard.runtime.router import router as chat_router
from switchboard.runtime.router import runs_router
from switchboard.settings import Settings
from switchboard.telemetry import Telemetry
from switchboard.tenancy.router import router as accounts_router
from switchboard.traffic.router import router as budget_router
from switchboard.ui.router import install as install_console


def create_app(settings: Settings | None = None, *, telemetry: Telemetry | None = None) -> FastAPI:
    settings = settings or Settings()
    telemetry = telemetry or Telemetry.from_settings(settings)  # traces: off unless configured
    metrics = Metrics()
    mcp = McpEndpoint(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await build_container(settings, metrics=metrics, telemetry=telemetry)
        app.state.container = container
        await container.ledger.lease.ensure()  # this process's lease, renewed every heartbeat
        await container.sweeper.start()  # pending rows of dead processes → interrupted
        await container.runs.start()  # their runs too; then watch for stop requests
        container.loop_lag.start()
        try:
            async with mcp.serve(container):  # the MCP SDK's session manager
                yield
        finally:
            await container.aclose()

    app = FastAPI(
        title="Switchboard",
        version=__version__,
        summary="Multi-tenant LLM agent server with an exact, crash-safe cost ledger",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        telemetry=FASTAPI_TELEMETRY,  # ours instead (api/tracing.py)
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        large_bodies={("POST", IMPORT_ROUTE): settings.max_import_bytes},
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    if telemetry.enabled:  # one span per request, inside RequestIds (it reads the request id)
        app.add_middleware(RequestSpans, tracer=telemetry.tracer)
    app.add_middleware(RequestIds)  # added last, so outside the others: every response has it
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics_api.router)
    app.include_router(accounts_router)
    app.include_router(agents_router)
    app.include_router(chat_router)
    app.include_router(runs_router)
    app.include_router(conversations_router)
    app.include_router(ledger_router)
    app.include_router(budget_router)
    app.include_router(discussions_router)
    app.include_router(directories_router)
    app.include_router(openai_router)
    install_console(app, settings)  # /ui: the operator's console
    mcp.mount(app)
    return app
