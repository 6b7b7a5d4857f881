from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from switchboard.api.errors import status_for
from switchboard.db.errors import translate_db_error
from switchboard.errors import (
    ConfigurationError,
    Conflict,
    DatabaseBusy,
    DatabaseUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    SwitchboardError,
    TransientError,
    Unauthenticated,
)
from switchboard.retry import RetryPolicy


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        (Unauthenticated("x"), 401, False),
        (Forbidden("x"), 403, False),
        (NotFound("x"), 404, False),
        (Conflict("x"), 409, False),
        (PayloadTooLarge("x"), 413, False),
        (InvalidRequest("x"), 422, False),
        (InvalidRequest("x", code="INVALID_CURSOR"), 400, False),
        (DatabaseBusy("x"), 503, True),
        (DatabaseUnavailable("x"), 503, True),
        (ConfigurationError("x"), 500, False),
    ],
)
def test_every_class_maps_to_one_status(
    error: SwitchboardError, status: int, retryable: bool
) -> None:
    assert status_for(error) == status
    assert error.retryable is retryable
    assert error.code  # always a stable code


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (_PgError("40001"), DatabaseBusy),
        (_PgError("40P01"), DatabaseBusy),
        (_PgError("08006"), DatabaseUnavailable),
        (_PgError("57P01"), DatabaseUnavailable),
        (_PgError("23505"), None),  # a unique violation is not transient
        (_PgError("42P01"), None),
        (sqlite3.OperationalError("database is locked"), DatabaseBusy),
        (sqlite3.OperationalError("no such table: x"), None),
        (ConnectionRefusedError("refused"), DatabaseUnavailable),
    ],
)
def test_driver_errors_are_classified(orig: Exception, expected: type | None) -> None:
    wrapped = sa_exc.DBAPIError("SELECT 1", {}, orig)
    translated = translate_db_error(wrapped)
    if expected is None:
        assert translated is None
    else:
        assert isinstance(translated, expected)


def test_pool_timeout_is_busy() -> None:
    assert isinstance(translate_db_error(sa_exc.TimeoutError()), DatabaseBusy)


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_s=0.05, cap_s=1.0)
    for attempt in range(1, 8):
        ceiling = min(1.0, 0.05 * 2 ** (attempt - 1))
        samples = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling / 2  # jittered across the range, not constant


async def test_retries_transient_only_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=4, base_s=0.0, max_total_s=5)
    calls = 0
    async for attempt in policy.retrying():
        with attempt:
            calls += 1
            if calls < 3:
                raise DatabaseBusy("busy", retry_after_s=0.01)
    assert calls == 3

    calls = 0
    with pytest.raises(NotFound):
        async for attempt in policy.retrying():
            with attempt:
                calls += 1
                raise NotFound("gone")
    assert calls == 1


async def test_gives_up_after_the_attempt_budget() -> None:
    policy = RetryPolicy(attempts=3, base_s=0.0, max_total_s=5)
    calls = 0
    with pytest.raises(TransientError):
        async for attempt in policy.retrying():
            with attempt:
                calls += 1
                raise DatabaseBusy("still busy", retry_after_s=0)
    assert calls == 3
