"""One SERVER span per HTTP request (installed only when traces are on; see telemetry.py).

Named ``METHOD route`` after the route template (``METHOD`` alone when no route matched), with
the HTTP semantic conventions' attributes and the request id (``X-Request-ID``); health probes
and metric scrapes are left out. A client's W3C
``traceparent`` makes it a child of the client's span; a client's baggage is not taken (it
would stamp what it likes on the spans), nor its query string (search text is a tenant's
content). Runs the request starts are its children (runtime/runs.py).

FastAPI's own telemetry is switched off (:data:`FASTAPI_TELEMETRY`): it would trace every
request a second time through a global provider (anyone's, whatever Switchboard's settings say),
record query strings, and log exceptions with their messages past the logs' redaction."""

from __future__ import annotations

from fastapi.telemetry import TelemetryConfig
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard import logs
from switchboard.telemetry import ACCOUNT, REQUEST_ID

_PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes, every few seconds
FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


class RequestSpans:
    """Pure ASGI middleware, inside :class:`~switchboard.api.request_ids.RequestIds` (it reads
    the request id that one binds)."""

    def __init__(self, app: ASGIApp, *, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNTRACED:
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "")
        carrier = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers") or []
            if key.lower() in (b"traceparent", b"tracestate")
        }
        attributes: dict[str, str] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        request_id = logs.current().get("request_id")
        if request_id is not None:
            attributes[REQUEST_ID] = request_id
        status: int | None = None

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with self.tracer.start_as_current_span(
            method,
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,  # a traceback can hold what the logs redact
            set_status_on_exception=True,
        ) as span:
            try:
                await self.app(scope, receive, send_recording)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                template = getattr(scope.get("route"), "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                account = logs.current().get("account")
                if account is not None:
                    span.set_attribute(ACCOUNT, account)
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # a client's error is not the server's (4xx: unset)
                        span.set_attribute("error.type", str(status))
                        span.set_status(Status(StatusCode.ERROR))
