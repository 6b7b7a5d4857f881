"""Structured logs: the ids of the request and run on every line, JSON or text, secrets never
written, and X-Request-ID accepted, replaced or made, on every response."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from switchboard import logs
from switchboard.api.errors import install_error_handlers
from switchboard.api.request_ids import RequestIds
from switchboard.errors import FatalError
from switchboard.settings import Settings

API_KEY = "sb_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0u1v"  # the shape of generate_key()
ADMIN_KEY = "not-prefixed-admin-secret-42"


class Lines:
    """Log lines captured through the JSON formatter, each parsed with ``json.loads``."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines()]

    def matching(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if text in line["message"]]


@contextmanager
def capture_json_logs(
    logger: str = "switchboard", *, secrets: tuple[str, ...] = ()
) -> Iterator[Lines]:
    """A handler with the server's filter and JSON formatter on ``logger`` (INFO and above)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter(secrets=secrets))
    target = logging.getLogger(logger)
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


def record(message: str, *args: object, **attributes: object) -> logging.LogRecord:
    made = logging.LogRecord("switchboard.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(attributes)
    return made


# --- context ----------------------------------------------------------------------------------
async def test_ids_are_bound_in_blocks_and_inherited_by_tasks() -> None:
    assert logs.current() == {}
    with logs.replaced({"request_id": "r1"}):
        logs.bind(account="acme", agent=None)  # None: left out
        with logs.bound(run_id="run-1", conversation_id="c-1"):
            task = asyncio.create_task(asyncio.sleep(0, result=logs.current()))
        assert logs.current() == {"request_id": "r1", "account": "acme"}
        assert await task == {
            "request_id": "r1",
            "account": "acme",
            "run_id": "run-1",
            "conversation_id": "c-1",
        }
        with logs.replaced({"request_id": "r2"}):
            assert logs.current() == {"request_id": "r2"}
    assert logs.current() == {}
    with pytest.raises(ValueError, match="not a log context field: password"):
        logs.bind(password="x")


def test_json_lines_carry_level_logger_ids_extras_and_the_exception() -> None:
    with capture_json_logs("switchboard.test") as lines:
        log = logging.getLogger("switchboard.test")
        with logs.bound(request_id="abc", account="acme", run_id="r-1"):
            log.info("settled %s", "row", extra={"llm_request_id": "row-9", "attempt": 2})
            try:
                raise RuntimeError("kaput")
            except RuntimeError:
                log.exception("it failed")
        log.warning("outside")
    first, second, third = lines.all()
    assert first["ts"].endswith("Z")
    assert first["ts"][10] == "T"
    assert {k: v for k, v in first.items() if k != "ts"} == {
        "level": "INFO",
        "logger": "switchboard.test",
        "message": "settled row",
        "request_id": "abc",
        "account": "acme",
        "run_id": "r-1",
        "llm_request_id": "row-9",
        "attempt": 2,
    }
    assert second["level"] == "ERROR"
    assert second["request_id"] == "abc"
    assert "RuntimeError: kaput" in second["exception"]
    assert "request_id" not in third
    assert third["message"] == "outside"


def test_text_lines_for_a_terminal() -> None:
    formatter = logs.TextFormatter()
    with logs.bound(request_id="abc", run_id="r-1"):
        line = formatter.format(record("run %s failed", "r-1", llm_request_id="row-9"))
    assert line.endswith(
        "WARNING switchboard.test: run r-1 failed [request_id=abc run_id=r-1 llm_request_id=row-9]"
    )


# --- redaction --------------------------------------------------------------------------------
LEAKS = [
    f"key {API_KEY} rejected",
    f"headers: {{'authorization': 'Bearer {API_KEY}'}}",
    f"[(b'authorization', b'Bearer {API_KEY}')]",
    "Authorization: Bearer some.jwt-like.token",
    "authorization=Basic dXNlcjpwYXNzd29yZA==",
    f"admin key {ADMIN_KEY} used",
    "sb_admin_" + "x" * 43,
    "provider key sk-proj-" + "z" * 40,
]


@pytest.mark.parametrize("message", LEAKS)
def test_secrets_never_reach_the_output(message: str) -> None:
    secrets = ("some.jwt-like.token", "dXNlcjpwYXNzd29yZA==", ADMIN_KEY, API_KEY, "x" * 43)
    json_formatter = logs.JsonFormatter(secrets=(ADMIN_KEY,))
    text_formatter = logs.TextFormatter(secrets=(ADMIN_KEY,))
    try:
        raise ValueError(message)
    except ValueError as exc:
        failing = record("failed: %s", message, exc_info=(ValueError, exc, exc.__traceback__))
    with logs.bound(request_id=message):  # a client-chosen id is redacted too
        outputs = [
            json_formatter.format(record(message)),
            json_formatter.format(record("%s", message, note=message)),
            json_formatter.format(failing),
            text_formatter.format(record(message)),
            text_formatter.format(failing),
        ]
    for output in outputs:
        assert logs.REDACTED in output
        for secret in secrets:
            assert secret not in output, output
            assert "z" * 40 not in output


def test_ordinary_text_is_left_alone() -> None:
    redact = logs.Redactor(["short", ADMIN_KEY])  # too short to be a secret: ignored
    text = "usb_device_identifier_long sb_short basic settings: short, display prefix sb_AbCdEfG"
    assert redact(text) == text


# --- configuration ----------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert logs.resolved_format("auto", _Terminal()) == "text"
    assert logs.resolved_format("auto", io.StringIO()) == "json"
    assert logs.resolved_format("json", _Terminal()) == "json"
    assert logs.resolved_format("text", io.StringIO()) == "text"


def test_settings_and_the_server_logging_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", "debug")
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "JSON")
    monkeypatch.setenv("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
    settings = Settings()
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    config = logs.logging_config(settings, stream=_Terminal())
    assert config["root"]["level"] == "DEBUG"
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name] == {"handlers": [], "propagate": True}
    # Built as dictConfig builds it (without configuring this process's logging):
    configurator = logging.config.DictConfigurator(config)
    formatter = configurator.configure_formatter(dict(config["formatters"]["switchboard"]))
    assert isinstance(formatter, logs.JsonFormatter)
    assert ADMIN_KEY not in formatter.format(record(f"key {ADMIN_KEY}"))
    text = logs.logging_config(
        settings.model_copy(update={"log_format": "auto"}), stream=_Terminal()
    )
    assert text["formatters"]["switchboard"]["()"] == "switchboard.logs.TextFormatter"


# --- X-Request-ID -----------------------------------------------------------------------------
def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIds)
    log = logging.getLogger("switchboard.test")

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        logs.bind(account="acme")
        log.info("handled")
        return logs.current()

    @app.get("/fatal")
    async def fatal() -> None:
        logs.bind(account="acme")
        raise FatalError("the database is gone")

    @app.get("/crash")
    async def crash() -> None:
        logs.bind(account="acme")
        raise RuntimeError("unexpected")

    return app


@contextmanager
def _no_ids_outside() -> Iterator[None]:
    yield
    assert logs.current() == {}  # the request's ids did not leak into the caller


async def test_request_id_is_accepted_replaced_or_made_and_always_returned() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with capture_json_logs() as lines, _no_ids_outside():
            given = await http.get("/ok", headers={"X-Request-ID": "abc"})
            made = await http.get("/ok")
            too_long = await http.get("/ok", headers={"X-Request-ID": "a" * 129})
            not_ascii = await http.get("/ok", headers={"X-Request-ID": "é".encode()})
            fatal = await http.get("/fatal", headers={"X-Request-ID": "f-1"})
            crash = await http.get("/crash", headers={"X-Request-ID": "c-1"})
            missing = await http.get("/nowhere", headers={"X-Request-ID": "n-1"})
    assert given.headers["x-request-id"] == "abc"
    assert given.json() == {"request_id": "abc", "account": "acme"}
    for response in (made, too_long, not_ascii):
        generated = response.headers["x-request-id"]
        assert len(generated) == 32
        assert int(generated, 16) >= 0
        assert response.json()["request_id"] == generated
    assert len({made.headers["x-request-id"], too_long.headers["x-request-id"]}) == 2
    assert (fatal.status_code, fatal.headers["x-request-id"]) == (500, "f-1")
    assert (crash.status_code, crash.headers["x-request-id"]) == (500, "c-1")
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "n-1")
    assert [line["request_id"] for line in lines.all() if line["message"] == "handled"] == [
        "abc",
        made.headers["x-request-id"],
        too_long.headers["x-request-id"],
        not_ascii.headers["x-request-id"],
    ]
    (failed,) = lines.matching("request failed")
    assert (failed["request_id"], failed["account"], failed["level"]) == ("f-1", "acme", "ERROR")
    (unhandled,) = lines.matching("unhandled error")
    assert (unhandled["request_id"], unhandled["account"]) == ("c-1", "acme")
    assert "RuntimeError: unexpected" in unhandled["exception"]
