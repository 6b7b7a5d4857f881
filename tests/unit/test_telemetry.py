"""When traces are on, what a missing extra does, and how a ledger row lands on its call's span
(switchboard/telemetry.py; the tree of a whole run is tests/integration/test_tracing.py)."""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError
from typer.testing import CliRunner

from switchboard.cli import app as cli
from switchboard.errors import ConfigurationError
from switchboard.settings import Settings
from switchboard.telemetry import (
    DISABLED,
    Telemetry,
    call_opened,
    call_settled,
    run_ended,
    wanted,
)

EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("auto", "auto"), ("on", "on"), ("true", "on"), ("1", "on"), ("OFF", "off"), ("no", "off")],
)
def test_otel_enabled_reads_on_off_and_auto(given: str, expected: str) -> None:
    assert settings(otel_enabled=given).otel_enabled == expected


def test_otel_enabled_rejects_anything_else() -> None:
    with pytest.raises(ValidationError):
        settings(otel_enabled="sometimes")


@pytest.mark.parametrize(
    ("mode", "environ", "expected"),
    [
        ("auto", {}, False),
        ("auto", ENDPOINT, True),
        ("auto", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ("on", {}, True),
        ("off", ENDPOINT, False),
        ("on", {"OTEL_SDK_DISABLED": "true"}, False),
        ("auto", {**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, False),
    ],
)
def test_traces_are_on_when_asked_or_an_endpoint_is_set(
    mode: str, environ: dict[str, str], expected: bool
) -> None:
    assert wanted(settings(otel_enabled=mode), environ) is expected


def test_off_is_the_shared_disabled_telemetry_without_capabilities() -> None:
    telemetry = Telemetry.from_settings(settings(otel_enabled="off"), environ=ENDPOINT)
    assert telemetry is DISABLED
    assert not telemetry.enabled
    assert telemetry.capabilities == ()
    with telemetry.run_span(
        agent="a",
        account="acct",
        run_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        model="demo",
        provider="demo",
    ) as span:
        assert not span.is_recording()
        run_ended(  # nothing to record on, nothing fails
            span,
            status="failed",
            error_code="X",
            ledger_ids=[],
            input_tokens=0,
            output_tokens=0,
            cost_usd="0",
        )


def test_on_without_the_extra_is_a_clear_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, EXPORTER_MODULE, None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"switchboard\[otel\]"):
        Telemetry.from_settings(settings(otel_enabled="on"), environ={})


def test_an_endpoint_without_the_extra_warns_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, EXPORTER_MODULE, None)
    with caplog.at_level(logging.WARNING, logger="switchboard.telemetry"):
        assert Telemetry.from_settings(settings(), environ=ENDPOINT) is DISABLED
    assert "'otel' extra" in caplog.text


def test_a_retried_call_shows_its_last_row_and_every_row_as_an_event(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    failed, answered = uuid.uuid4(), uuid.uuid4()
    with provider.get_tracer("test").start_as_current_span("chat m"):
        call_opened(failed)
        call_settled(failed, status="error", cost_nano_usd=0, error_code="PROVIDER_UNAVAILABLE")
        call_opened(answered)
        call_settled(answered, status="complete", cost_nano_usd=12_345, error_code=None)
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "switchboard.ledger_id": str(answered),
        "switchboard.ledger.status": "complete",
        "switchboard.cost_usd": "0.000012345",
    }
    assert [dict(e.attributes or {}) for e in span.events] == [
        {
            "switchboard.ledger_id": str(failed),
            "switchboard.ledger.status": "error",
            "switchboard.cost_usd": "0.000000000",
            "switchboard.ledger.error_code": "PROVIDER_UNAVAILABLE",
        },
        {
            "switchboard.ledger_id": str(answered),
            "switchboard.ledger.status": "complete",
            "switchboard.cost_usd": "0.000012345",
        },
    ]


def test_without_a_span_the_ledger_annotations_do_nothing(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    _, exporter = recorded
    call_opened(uuid.uuid4())
    call_settled(uuid.uuid4(), status="complete", cost_nano_usd=1, error_code=None)
    assert exporter.get_finished_spans() == ()


def test_serve_refuses_on_without_the_extra_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``serve`` checks before anything starts (and before its workers each fail with a
    trace): exit code 1 and the message, no traceback."""
    monkeypatch.setitem(sys.modules, EXPORTER_MODULE, None)
    monkeypatch.setenv("SWITCHBOARD_OTEL_ENABLED", "on")
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/t.db")
    result = CliRunner().invoke(cli, ["serve", "--no-seed", "--workers", "2"])
    assert result.exit_code == 1
    assert "switchboard[otel]" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "t.db").exists()  # refused before the database was touched
