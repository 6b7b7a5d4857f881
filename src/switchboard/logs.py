"""Structured logs: every line carries the ids of the request and run it belongs to.

The ids live in one context variable (``request_id``, ``account``, ``agent``,
``conversation_id``, ``run_id``). The request middleware binds a fresh context per request;
``get_scope`` adds the account and agent; a run's task is created inside :func:`bound` with its
ids, and asyncio copies the context into every task made from there (tool calls, ledger
settlements), so their lines carry the run's ids without passing them around.

:class:`ContextFilter` stamps the ids on each record as it is emitted; :class:`JsonFormatter`
writes one JSON object per line (``ts``, ``level``, ``logger``, ``message``, the ids, any
``extra=`` fields such as ``llm_request_id``, ``exception``); :class:`TextFormatter` the same
for a terminal. Both pass everything through :class:`Redactor`: API keys (``sb_…``), bearer and
basic credentials, ``Authorization`` values and the configured secrets (the admin key, the
metrics token) never reach the output, even inside a message or a traceback.
:func:`logging_config` is the ``dictConfig`` that ``switchboard serve`` hands to uvicorn (and
so to each worker process), its own loggers included."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from switchboard.settings import Settings

CONTEXT_FIELDS = ("request_id", "account", "agent", "conversation_id", "run_id")
REDACTED = "[REDACTED]"

_EMPTY: Mapping[str, str] = {}
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "switchboard_log_context", default=_EMPTY
)


def current() -> dict[str, str]:
    """The ids bound in this context."""
    return dict(_context.get())


def _merged(fields: Mapping[str, object], *, fresh: bool) -> dict[str, str]:
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {', '.join(sorted(unknown))}")
    merged = {} if fresh else dict(_context.get())
    merged.update({name: str(value) for name, value in fields.items() if value is not None})
    return merged


def bind(**fields: object) -> None:
    """Add ids to the rest of the current context (a request's, or a task's); ``None`` values
    are left out. Whoever made the context resets it (the request middleware does)."""
    _context.set(_merged(fields, fresh=False))


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Ids added inside the block (and in the tasks created in it)."""
    token = _context.set(_merged(fields, fresh=False))
    try:
        yield
    finally:
        _context.reset(token)


@contextlib.contextmanager
def replaced(context: Mapping[str, object]) -> Iterator[None]:
    """Exactly these ids inside the block, none bound outside it (a request starts so)."""
    token = _context.set(_merged(context, fresh=True))
    try:
        yield
    finally:
        _context.reset(token)


# --- redaction --------------------------------------------------------------------------------
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: …", "'authorization': '…'", "x-api-key=…": the whole value.
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key|api[-_]key)"
            r"([\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic)\s+)?[^\s\"',;}\]]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), f"Bearer {REDACTED}"),
    (re.compile(r"\bBasic\s+[A-Za-z0-9+/=]{12,}"), f"Basic {REDACTED}"),
    # Our API keys (tenancy/keys.py: "sb_" + 43 url-safe characters; admin keys "sb_admin_…")
    # and the usual shape of provider keys.
    (re.compile(r"(?<![A-Za-z0-9])sb_[A-Za-z0-9_-]{16,}"), f"sb_{REDACTED}"),
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}"), f"sk-{REDACTED}"),
)
MIN_SECRET_LENGTH = 8  # shorter configured secrets would blank ordinary words


class Redactor:
    """Removes credentials from text: the patterns above and the given secrets, verbatim."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


# --- records ----------------------------------------------------------------------------------
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}


class ContextFilter(logging.Filter):
    """Stamps the ids bound where a record is emitted on the record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _ids(record: logging.LogRecord) -> dict[str, str]:
    """The record's ids: as stamped by :class:`ContextFilter`, else the current context."""
    context = _context.get()
    ids: dict[str, str] = {}
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = context.get(name)
        if value is not None:
            ids[name] = str(value)
    return ids


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _STANDARD and name not in CONTEXT_FIELDS and not name.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _RedactingFormatter(logging.Formatter):
    def __init__(self, *, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def _exception(self, record: logging.LogRecord) -> str | None:
        parts: list[str] = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) if parts else None


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line (ASCII-escaped, so any message is valid JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        entry.update({name: self.redact(value) for name, value in _ids(record).items()})
        for name, value in _extras(record).items():
            if value is None or isinstance(value, bool | int | float):
                entry[name] = value
            else:
                entry[name] = self.redact(str(value))
        exception = self._exception(record)
        if exception is not None:
            entry["exception"] = self.redact(exception)
        return json.dumps(entry, default=str)


class TextFormatter(_RedactingFormatter):
    """``ts LEVEL logger: message [id=… …]`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_ids(record), **_extras(record)}
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " [" + " ".join(f"{name}={value}" for name, value in fields.items()) + "]"
        exception = self._exception(record)
        if exception is not None:
            line += "\n" + exception
        return self.redact(line)


# --- configuration ----------------------------------------------------------------------------
def resolved_format(
    log_format: Literal["auto", "json", "text"], stream: TextIO | None = None
) -> Literal["json", "text"]:
    """``auto``: text on a terminal, JSON otherwise."""
    if log_format != "auto":
        return log_format
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def logging_config(settings: Settings, *, stream: TextIO | None = None) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a server process: everything (uvicorn's loggers
    too) to stderr through one formatter, with the ids and without the secrets."""
    formatter = (
        JsonFormatter if resolved_format(settings.log_format, stream) == "json" else TextFormatter
    )
    secrets = [
        secret.get_secret_value()
        for secret in (settings.admin_key, settings.metrics_token)
        if secret is not None
    ]
    own: dict[str, Any] = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}.ContextFilter"}},
        "formatters": {
            "switchboard": {"()": f"{__name__}.{formatter.__name__}", "secrets": secrets}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "switchboard",
                "filters": ["context"],
            }
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        "loggers": {name: dict(own) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
