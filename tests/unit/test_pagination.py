from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from switchboard.errors import InvalidRequest
from switchboard.pagination import (
    decode_cursor,
    decode_int_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)


def test_cursors_round_trip() -> None:
    assert decode_cursor(encode_cursor("a", "b"), size=2) == ["a", "b"]
    when, row = datetime(2026, 11, 23, 9, 0, tzinfo=UTC), uuid.uuid4()
    assert decode_time_cursor(encode_time_cursor(when, row)) == (when, row)
    assert decode_int_cursor(encode_cursor("42")) == 42
    assert decode_time_cursor(None) is None
    assert decode_int_cursor(None) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "garbage!!",
        "bm9wZQ",
        encode_cursor("a"),
        encode_cursor("not-a-date", "x"),
        encode_cursor("2026-11-23T00:00:00+00:00", "not-a-uuid"),
    ],
)
def test_foreign_time_cursors_are_invalid_cursor(bad: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_time_cursor(bad)
    assert caught.value.code == "INVALID_CURSOR"


@pytest.mark.parametrize("bad", [encode_cursor("-1"), encode_cursor("x"), "%%%"])
def test_foreign_int_cursors_are_invalid_cursor(bad: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_int_cursor(bad)
    assert caught.value.code == "INVALID_CURSOR"
