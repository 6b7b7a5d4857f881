"""Opaque keyset cursors: clients pass back what they were given and never parse it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from switchboard.errors import InvalidRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(*values: str) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest("the cursor is not one this server issued", code="INVALID_CURSOR")


def decode_cursor(cursor: str, *, size: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, str) for v in values)
    ):
        raise invalid_cursor()
    return values


def encode_time_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """A keyset cursor for lists ordered newest first by (created_at, id)."""
    return encode_cursor(created_at.isoformat(), str(row_id))


def decode_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    created, row_id = decode_cursor(cursor, size=2)
    try:
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except ValueError:
        raise invalid_cursor() from None


def decode_int_cursor(cursor: str | None) -> int:
    """A cursor holding a non-negative integer (e.g. a sequence number); 0 without one."""
    if not cursor:
        return 0
    [raw] = decode_cursor(cursor, size=1)
    if not raw.isdigit():
        raise invalid_cursor()
    return int(raw)
