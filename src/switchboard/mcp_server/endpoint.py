"""The MCP server and its routes: ``/mcp`` (Streamable HTTP, stateless, JSON responses) and
the RFC 9728 protected-resource metadata a 401 points to.

Every request to either passes, in order: the SDK's Host/Origin check (421/403: DNS-rebinding
protection, hosts from ``SWITCHBOARD_MCP_ALLOWED_HOSTS``), then for ``/mcp`` the SDK's bearer
authentication over the account keys (401 with ``WWW-Authenticate: Bearer … resource_metadata=…``,
403 for the admin key), then the SDK's session manager, which serves both protocol eras (the
initialize handshake and the 2026 per-request envelope). The session manager lives as long as
the app's lifespan (:meth:`McpEndpoint.serve`); the handlers find the container in the MCP
server's lifespan state and the account in the SDK's access-token context variable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from switchboard import __version__
from switchboard.bootstrap import Container
from switchboard.mcp_server.auth import ACCOUNT_SCOPE, KeyVerifier, current_account
from switchboard.mcp_server.tools import call_tool, list_tools
from switchboard.settings import Settings
from switchboard.tenancy.service import TenancyService

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource" + PATH
INSTRUCTIONS = (
    "Switchboard: ask_<agent> sends a message to one of this account's agents (a billed run; "
    "pass conversation_id back to continue); search_<directory> searches a directory."
)
Context = ServerRequestContext[Container, Any]


def build_server(container: Container) -> Server[Container]:
    """The low-level server: its tools depend on the calling key, so they are listed and
    called per request rather than registered once."""

    @asynccontextmanager
    async def lifespan(_: Server[Container]) -> AsyncIterator[Container]:
        yield container

    async def on_list_tools(ctx: Context, params: PaginatedRequestParams | None) -> ListToolsResult:
        cursor = params.cursor if params is not None else None
        tools, next_cursor = await list_tools(
            ctx.lifespan_context, current_account(), cursor=cursor
        )
        return ListToolsResult(tools=tools, next_cursor=next_cursor)

    async def on_call_tool(ctx: Context, params: CallToolRequestParams) -> CallToolResult:
        scope = current_account()
        return await call_tool(ctx.lifespan_context, scope, params.name, params.arguments)

    return Server(
        "switchboard",
        version=__version__,
        title="Switchboard",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        # No tool declares x-mcp-header parameters, so there are no Mcp-Param-* headers to
        # check (2026 era); without this the SDK would run tools/list before every call.
        get_tool_input_schema=lambda _name: None,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


class McpEndpoint:
    """``/mcp`` for one app: mount its routes at creation, serve it during the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self._guard = TransportSecurityMiddleware(
            TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=list(settings.mcp_allowed_hosts),
                allowed_origins=list(settings.mcp_allowed_origins),
            )
        )
        self._manager: StreamableHTTPSessionManager | None = None
        self._tenancy: TenancyService | None = None
        self._auth = BearerAuthBackend(KeyVerifier(self._tenancy_service))

    def mount(self, app: FastAPI) -> None:
        metadata = _Asgi(cors_middleware(self._metadata, ["GET", "OPTIONS"]))
        app.router.routes.extend(
            [
                Route(PATH, _Asgi(self._handle), include_in_schema=False),
                Route(METADATA_PATH, metadata, methods=["GET", "OPTIONS"], include_in_schema=False),
            ]
        )

    @asynccontextmanager
    async def serve(self, container: Container) -> AsyncIterator[None]:
        """Run the SDK's session manager (a new one per lifespan: it runs only once)."""
        manager = StreamableHTTPSessionManager(
            app=build_server(container),
            json_response=True,
            stateless=True,
            security_settings=self._guard.settings,
        )
        async with manager.run():
            self._manager, self._tenancy = manager, container.tenancy
            try:
                yield
            finally:
                self._manager = self._tenancy = None

    def _tenancy_service(self) -> TenancyService:
        if self._tenancy is None:
            raise RuntimeError("/mcp is not being served")
        return self._tenancy

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refused = await self._guard.validate_request(request)
        if refused is None and self._manager is None:
            refused = JSONResponse({"error": "not ready"}, status_code=503)
        if refused is not None:
            await refused(scope, receive, send)
            return
        assert self._manager is not None
        metadata_url = build_resource_metadata_url(_resource(request))
        guarded = RequireAuthMiddleware(self._manager.handle_request, [ACCOUNT_SCOPE], metadata_url)
        authenticated = AuthenticationMiddleware(AuthContextMiddleware(guarded), backend=self._auth)
        await authenticated(scope, receive, send)

    async def _metadata(self, request: Request) -> Response:
        refused = await self._guard.validate_request(request)
        if refused is not None:
            return refused
        metadata = ProtectedResourceMetadata(
            resource=_resource(request),
            # No OAuth server: account keys are bearer tokens issued by the operator
            # (docs/decisions.md). The field is required; it names this server.
            authorization_servers=[AnyHttpUrl(_base(request))],
            resource_name="Switchboard",
        )
        return await ProtectedResourceMetadataHandler(metadata).handle(request)


class _Asgi:
    """An ASGI app as a route endpoint (a bound method would be taken for a request handler)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _resource(request: Request) -> AnyHttpUrl:
    """This server's /mcp as the client reached it (the Host was checked first)."""
    return AnyHttpUrl(_base(request) + PATH)
