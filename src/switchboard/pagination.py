"""Opaque keyset cursors: clients pass back what they were given and never parse it.

A cursor is decoded into values of their real range or refused with 400 ``INVALID_CURSOR``:
texts without NUL or lone surrogates, timezone-aware datetimes that convert to UTC, and
integers within 64 bits — never a database error later."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator

from switchboard.errors import InvalidRequest
from switchboard.schemas import MAX_INT, unsafe_text_reason

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 1000
_DIGITS = re.compile(r"[0-9]{1,19}")


def encode_cursor(*values: str) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest("the cursor is not one this server issued", code="INVALID_CURSOR")


def decode_cursor(cursor: str, *, size: int) -> list[str]:
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, str) and unsafe_text_reason(v) is None for v in values)
    ):
        raise invalid_cursor()
    return values


def encode_time_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """A keyset cursor for lists ordered by (created_at, id)."""
    return encode_cursor(created_at.isoformat(), str(row_id))


def decode_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    created, row_id = decode_cursor(cursor, size=2)
    try:
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:  # a date alone, or a naive time: never one we issued
            raise ValueError(created)
        return moment.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, OverflowError):
        raise invalid_cursor() from None


def decode_int_cursor(cursor: str | None) -> int:
    """A cursor holding a non-negative 64-bit integer (e.g. a sequence number); 0 without one."""
    if not cursor:
        return 0
    [raw] = decode_cursor(cursor, size=1)
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_INT:
        raise invalid_cursor()
    return int(raw)


_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    """Query times are ISO 8601 text, as documented: pydantic would also read a bare number
    as a Unix time, which no client means by ``since=0.8``."""
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2026-11-23T00:00:00Z")
    return value


QueryTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A datetime query parameter: ISO 8601 text only (then :func:`utc_query_time`)."""


def utc_query_time(value: datetime | None, name: str) -> datetime | None:
    """A datetime query parameter as UTC: it must carry a timezone and convert to UTC within
    the years 1–9999 (``0001-01-01T00:00:00+01:00`` does not), else 400 ``INVALID_QUERY``."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidRequest(
            f"'{name}' needs a timezone, e.g. 2026-11-23T00:00:00Z", code="INVALID_QUERY"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(
            f"'{name}' is out of range once converted to UTC", code="INVALID_QUERY"
        ) from None
