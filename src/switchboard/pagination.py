"""Opaque keyset cursors: clients pass back what they were given and never parse it."""

from __future__ import annotations

import base64
import binascii
import json

from switchboard.errors import InvalidRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(*values: str) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
        raise InvalidRequest("the cursor is not one this server issued", code="INVALID_CURSOR")
    return values
