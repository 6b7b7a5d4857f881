"""The one error taxonomy. Every error Switchboard raises is one of three classes:

    SwitchboardError (code, message, kind)
    ├── TransientError      retryable: the same request may succeed later
    │   ├── DatabaseBusy            DATABASE_BUSY        (locks, pool exhausted)
    │   ├── DatabaseUnavailable     DATABASE_UNAVAILABLE (connection lost / refused)
    │   ├── ServerBusy              SERVER_BUSY (the queue of runs waiting to start is full)
    │   ├── ProviderRateLimited     PROVIDER_RATE_LIMITED (429)
    │   ├── ProviderUnavailable     PROVIDER_UNAVAILABLE (5xx, connection errors)
    │   ├── ProviderTimeout         PROVIDER_TIMEOUT
    │   ├── ProviderBusy            PROVIDER_BUSY (no slot within queue_timeout)
    │   ├── ProviderStreamCut       PROVIDER_STREAM_CUT (a stream ended without its final chunk)
    │   ├── BudgetBusy              BUDGET_BUSY (in-flight reservations did not settle in time)
    │   └── LimiterUnavailable      LIMITER_UNAVAILABLE (Redis unreachable: fail closed)
    ├── PermanentError      the request itself is wrong; retrying cannot help
    │   ├── InvalidRequest          VALIDATION_ERROR / INVALID_JSON / INVALID_CURSOR …
    │   │   └── PayloadTooLarge     PAYLOAD_TOO_LARGE
    │   ├── Unauthenticated         UNAUTHENTICATED
    │   ├── Forbidden               FORBIDDEN
    │   ├── NotFound                ACCOUNT_NOT_FOUND / AGENT_NOT_FOUND / KEY_NOT_FOUND …
    │   └── Conflict                ACCOUNT_ALREADY_EXISTS / AGENT_ALREADY_EXISTS …
    │       └── ConversationBusy    CONVERSATION_BUSY (multitask_strategy=reject)
    │   ├── BudgetExceeded          BUDGET_EXCEEDED
    │   └── UpstreamRejected        PROVIDER_PERMANENT_ERROR (the provider refused the call)
    └── FatalError          the deployment is broken; an operator must act
        ├── ConfigurationError      CONFIGURATION_ERROR
        ├── ProviderMisconfigured   PROVIDER_MISCONFIGURED (missing or rejected API key)
        └── DataCorruption          DATA_CORRUPTION

Codes are stable strings clients may rely on. Nothing here knows about HTTP:
``switchboard.api.errors`` is the only place that maps these classes to status codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

ErrorKind = Literal["transient", "permanent", "fatal"]


class SwitchboardError(Exception):
    """Base of every error the project raises on purpose."""

    kind: ClassVar[ErrorKind] = "fatal"
    default_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, object] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = dict(details or {})
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind == "transient"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class TransientError(SwitchboardError):
    kind: ClassVar[ErrorKind] = "transient"
    default_code: ClassVar[str] = "TRANSIENT_ERROR"


class PermanentError(SwitchboardError):
    kind: ClassVar[ErrorKind] = "permanent"
    default_code: ClassVar[str] = "PERMANENT_ERROR"


class FatalError(SwitchboardError):
    kind: ClassVar[ErrorKind] = "fatal"
    default_code: ClassVar[str] = "FATAL_ERROR"


# --- transient -------------------------------------------------------------------------------
class DatabaseBusy(TransientError):
    default_code: ClassVar[str] = "DATABASE_BUSY"


class DatabaseUnavailable(TransientError):
    default_code: ClassVar[str] = "DATABASE_UNAVAILABLE"


class ServerBusy(TransientError):
    default_code: ClassVar[str] = "SERVER_BUSY"


# --- permanent -------------------------------------------------------------------------------
class InvalidRequest(PermanentError):
    default_code: ClassVar[str] = "VALIDATION_ERROR"


class PayloadTooLarge(InvalidRequest):
    default_code: ClassVar[str] = "PAYLOAD_TOO_LARGE"


class Unauthenticated(PermanentError):
    default_code: ClassVar[str] = "UNAUTHENTICATED"


class Forbidden(PermanentError):
    default_code: ClassVar[str] = "FORBIDDEN"


class NotFound(PermanentError):
    default_code: ClassVar[str] = "NOT_FOUND"


class Conflict(PermanentError):
    default_code: ClassVar[str] = "CONFLICT"


class ConversationBusy(Conflict):
    """A run was refused because another run of its conversation is active (the ``reject``
    multitask strategy); ``details.active_run_id`` names it."""

    default_code: ClassVar[str] = "CONVERSATION_BUSY"


# --- fatal -----------------------------------------------------------------------------------
class ConfigurationError(FatalError):
    default_code: ClassVar[str] = "CONFIGURATION_ERROR"


class DataCorruption(FatalError):
    default_code: ClassVar[str] = "DATA_CORRUPTION"


# --- providers (upstream LLM APIs) ----------------------------------------------------------
class ProviderRateLimited(TransientError):
    default_code: ClassVar[str] = "PROVIDER_RATE_LIMITED"


class ProviderUnavailable(TransientError):
    default_code: ClassVar[str] = "PROVIDER_UNAVAILABLE"


class ProviderTimeout(TransientError):
    default_code: ClassVar[str] = "PROVIDER_TIMEOUT"


class ProviderBusy(TransientError):
    """Waited ``queue_timeout_s`` for a provider slot or rate-limit capacity without getting it."""

    default_code: ClassVar[str] = "PROVIDER_BUSY"


class LimiterUnavailable(TransientError):
    """The shared limiter (Redis) cannot be reached: the call is refused, never unlimited."""

    default_code: ClassVar[str] = "LIMITER_UNAVAILABLE"


class ProviderStreamCut(TransientError):
    """A streamed response ended without the provider's final chunk (no finish reason): the
    answer is truncated, never a finished reply. Retried when nothing was handed on yet."""

    default_code: ClassVar[str] = "PROVIDER_STREAM_CUT"


class BudgetBusy(TransientError):
    """The money is there, but reservations of calls still in flight stand in the way, and they
    did not settle within the provider's ``queue_timeout_s``: retry after Retry-After."""

    default_code: ClassVar[str] = "BUDGET_BUSY"


class BudgetExceeded(PermanentError):
    default_code: ClassVar[str] = "BUDGET_EXCEEDED"


class UpstreamRejected(PermanentError):
    """The provider refused the request (400, 404, 422, content policy): not the client's input,
    not retryable."""

    default_code: ClassVar[str] = "PROVIDER_PERMANENT_ERROR"


class ProviderMisconfigured(FatalError):
    """A missing or rejected API key, an unknown provider: an operator must fix the config."""

    default_code: ClassVar[str] = "PROVIDER_MISCONFIGURED"


def error_for_code(code: str, message: str, kind: str | None) -> SwitchboardError:
    """Rebuild an error read back from storage (a run's outcome): the class whose default code
    it is, else the class of its kind, with the stored code and message."""
    by_kind: dict[str, type[SwitchboardError]] = {
        "transient": TransientError,
        "permanent": PermanentError,
        "fatal": FatalError,
    }
    pending: list[type[SwitchboardError]] = [SwitchboardError]
    while pending:
        cls = pending.pop()
        if cls.__dict__.get("default_code") == code and cls.kind == (kind or cls.kind):
            return cls(message, code=code)
        pending.extend(cls.__subclasses__())
    return by_kind.get(kind or "fatal", FatalError)(message, code=code)
