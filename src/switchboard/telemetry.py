"""Traces: OpenTelemetry spans after the GenAI semantic conventions, exported over OTLP/HTTP.
An optional extra (``pip install 'switchboard[otel]'``); off unless configured (settings
``otel_enabled``, ``otel_include_content``; the exporter reads the standard ``OTEL_*`` variables).

The spans of one request and the run it starts::

    POST /v1/accounts/{account}/agents/{agent}/chat   SERVER  api/tracing.py: http.*, request id
    └─ invoke_agent {agent}      one per run (runtime/runs.py): waiting, summary, turn, finish
       ├─ chat {model}           Pydantic AI's, one per model request: gen_ai.* and token usage,
       │                         plus the ledger row of the call (runtime/admission.py)
       └─ execute_tool {tool}    Pydantic AI's, one per tool call

The run's span is a child of the request's even when the run outlives it (a background run,
a client gone with ``on_disconnect=continue``): its task is created inside the request, and
asyncio copies the context into it. Pydantic AI's own agent-run span is left out (see
:class:`ModelAndToolSpans`): the run's span is the one ``invoke_agent`` span of a run.

Off, :data:`DISABLED` stands in: no middleware, no span, no Pydantic AI capability; nothing of
the SDK is imported (only the ``opentelemetry-api`` Pydantic AI depends on), and the ledger's
annotations find no recording span and do nothing. Tests inject a provider of their own
(``Telemetry(provider)``); the global provider is never set."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracer,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    get_current_span,
)
from pydantic_ai.capabilities import AbstractCapability, Instrumentation
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import RunContext

from switchboard import __version__
from switchboard.errors import ConfigurationError
from switchboard.money import nano_to_usd_str
from switchboard.settings import Settings

log = logging.getLogger("switchboard.telemetry")

SCOPE = "switchboard"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

# Switchboard's own attributes (the GenAI and HTTP ones are the semantic conventions').
ACCOUNT = "switchboard.account"
RUN_ID = "switchboard.run_id"
RUN_STATUS = "switchboard.run.status"
REQUEST_ID = "switchboard.request_id"
LEDGER_ID = "switchboard.ledger_id"
LEDGER_IDS = "switchboard.ledger_ids"
LEDGER_STATUS = "switchboard.ledger.status"
LEDGER_ERROR_CODE = "switchboard.ledger.error_code"
COST_USD = "switchboard.cost_usd"  # an exact decimal string, as the ledger's API gives it
LEDGER_EVENT = "switchboard.ledger.settled"


class ModelAndToolSpans(Instrumentation):
    """Pydantic AI's instrumentation (``chat`` and ``execute_tool`` spans, GenAI conventions)
    without its agent-run span: a Switchboard run is one ``invoke_agent`` span that also covers
    its wait, its summary call and its finish. The agent's name and the conversation reach the
    model and tool spans through the baggage the run's span sets, as Pydantic AI's would."""

    async def wrap_run(
        self, ctx: RunContext[Any], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        return await handler()


class Telemetry:
    """The process's traces: spans from ``provider``, or none at all (``provider=None``)."""

    def __init__(
        self,
        provider: TracerProvider | None = None,
        *,
        include_content: bool = False,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.enabled = provider is not None
        self._on_close = on_close
        self.tracer: Tracer = NoOpTracer()
        self.capabilities: tuple[AbstractCapability[Any], ...] = ()
        if provider is not None:
            self.tracer = provider.get_tracer(SCOPE, __version__)
            instrumentation = InstrumentationSettings(
                tracer_provider=provider,
                include_content=include_content,
                include_binary_content=include_content,
                include_model_request_parameters=False,  # tool definitions are there anyway
            )
            self.capabilities = (ModelAndToolSpans(settings=instrumentation),)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, environ: Mapping[str, str] | None = None
    ) -> Telemetry:
        """Traces exported over OTLP/HTTP in batches, when the settings ask for them."""
        environ = os.environ if environ is None else environ
        if not wanted(settings, environ):
            return DISABLED
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            message = _missing_extra(exc)
            if settings.otel_enabled == "on":
                raise ConfigurationError(f"SWITCHBOARD_OTEL_ENABLED=on: {message}") from exc
            log.warning("%s: an OTLP endpoint is set, but traces are off", message)
            return DISABLED
        resource = Resource.create({"service.version": __version__})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "switchboard"}))
        provider = SdkTracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER is read here
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(
            provider, include_content=settings.otel_include_content, on_close=provider.shutdown
        )

    def close(self) -> None:
        """Export what is left and stop the exporter (blocking: call it from a thread)."""
        if self._on_close is not None:
            self._on_close()

    def run_span(
        self,
        *,
        agent: str,
        account: str,
        run_id: uuid.UUID,
        conversation_id: uuid.UUID,
        model: str,
        provider: str,
    ) -> AbstractContextManager[Span]:
        """The ``invoke_agent`` span of a run, current inside the block (a non-recording span
        when traces are off)."""
        if not self.enabled:
            return _NO_SPAN
        return self._run_span(
            agent=agent,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "gen_ai.conversation.id": str(conversation_id),
                "gen_ai.request.model": model,
                "gen_ai.provider.name": provider,
                ACCOUNT: account,
                RUN_ID: str(run_id),
            },
        )

    @contextlib.contextmanager
    def _run_span(self, *, agent: str, attributes: dict[str, str]) -> Iterator[Span]:
        with self.tracer.start_as_current_span(
            f"invoke_agent {agent}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,  # a traceback can hold what the logs redact
            set_status_on_exception=True,
        ) as span:
            # Read by Pydantic AI's model and tool spans (gen_ai.agent.name, …conversation.id).
            scoped = baggage.set_baggage("gen_ai.agent.name", agent)
            scoped = baggage.set_baggage(
                "gen_ai.conversation.id", attributes["gen_ai.conversation.id"], context=scoped
            )
            token = otel_context.attach(scoped)
            try:
                yield span
            finally:
                otel_context.detach(token)


DISABLED = Telemetry()
_NO_SPAN: AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)


def _missing_extra(exc: ImportError) -> str:
    return (
        "traces need the 'otel' extra (pip install 'switchboard[otel]'); "
        f"it is not installed ({exc.name} is missing)"
    )


def check_available(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` now, before a server starts, if traces are switched
    on (``SWITCHBOARD_OTEL_ENABLED=on``) and the SDK is not installed."""
    if settings.otel_enabled != "on" or not wanted(settings, os.environ):
        return
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(f"SWITCHBOARD_OTEL_ENABLED=on: {_missing_extra(exc)}") from exc


def wanted(settings: Settings, environ: Mapping[str, str]) -> bool:
    """On if the settings say so, or (``auto``) if an OTLP endpoint is configured; never when
    OTEL_SDK_DISABLED is true."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if settings.otel_enabled != "auto":
        return settings.otel_enabled == "on"
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def run_ended(
    span: Span,
    *,
    status: str,
    error_code: str | None,
    ledger_ids: list[str],
    input_tokens: int,
    output_tokens: int,
    cost_usd: str,
) -> None:
    """How a run ended, on its span: its status, and its calls as the ledger has them."""
    if not span.is_recording():
        return
    span.set_attributes(
        {
            RUN_STATUS: status,
            LEDGER_IDS: ledger_ids,
            COST_USD: cost_usd,
            # As Pydantic AI names an agent run's usage: backends that add up gen_ai.usage.*
            # over a trace do not count the chat spans' tokens twice.
            "gen_ai.aggregated_usage.input_tokens": input_tokens,
            "gen_ai.aggregated_usage.output_tokens": output_tokens,
        }
    )
    if status == "failed":
        span.set_attribute("error.type", error_code or "INTERNAL_ERROR")
        span.set_status(Status(StatusCode.ERROR, error_code))


def call_opened(row_id: uuid.UUID) -> None:
    """A provider call's pending ledger row, on the current span (Pydantic AI's ``chat``)."""
    span = get_current_span()
    if span.is_recording():
        span.set_attribute(LEDGER_ID, str(row_id))


def call_settled(
    row_id: uuid.UUID, *, status: str, cost_nano_usd: int, error_code: str | None
) -> None:
    """A provider call's ledger row as settled, on the current span: its attributes are the
    latest attempt's row; every attempt (a retried call has several) is an event."""
    span = get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, str] = {
        LEDGER_ID: str(row_id),
        LEDGER_STATUS: status,
        COST_USD: nano_to_usd_str(cost_nano_usd),
    }
    span.set_attributes(attributes)
    if error_code is not None:
        attributes[LEDGER_ERROR_CODE] = error_code
    span.add_event(LEDGER_EVENT, attributes)
