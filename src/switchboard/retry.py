"""Retry policies: exponential backoff with full jitter, driven by the error taxonomy.

Only :class:`~switchboard.errors.TransientError` is ever retried; permanent and fatal errors
propagate on the first attempt. A transient error's ``retry_after_s`` (e.g. from a provider's
``Retry-After``) is honoured as a lower bound on the wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_after_delay

from switchboard.errors import TransientError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_s: float = 0.05
    cap_s: float = 1.0
    max_total_s: float = 1.5

    def backoff(self, attempt_number: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(attempt_number - 1, 0)))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography

    def wait(self, state: RetryCallState) -> float:
        delay = self.backoff(state.attempt_number)
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, TransientError) and exc.retry_after_s is not None:
                delay = max(delay, exc.retry_after_s)
        return delay

    def delay(self, error: TransientError, *, attempt: int, elapsed_s: float) -> float | None:
        """How long to wait before attempt ``attempt + 1``, or ``None`` to give up (attempts or
        the total deadline spent). Honours the error's ``retry_after_s``."""
        if attempt >= self.attempts:
            return None
        wait = self.backoff(attempt)
        if error.retry_after_s is not None:
            wait = max(wait, error.retry_after_s)
        if elapsed_s + wait > self.max_total_s:
            return None
        return wait

    def insisting(self, max_total_s: float) -> RetryPolicy:
        """This policy for writes that must not fail on contention (after a provider call):
        as many attempts as fit in ``max_total_s``."""
        return replace(self, attempts=1_000_000, max_total_s=max_total_s)

    def retrying(self) -> AsyncRetrying:
        """A tenacity controller that retries transient errors only, then re-raises."""
        return AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, TransientError)),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_total_s),
            wait=self.wait,
            reraise=True,
        )
