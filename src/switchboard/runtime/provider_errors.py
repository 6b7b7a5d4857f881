"""Provider failures in the error taxonomy. A tenant sees the status and the class of a failure,
never the provider's own body (which may carry account details, request ids or echoed input);
the full error goes to the operator's log."""

from __future__ import annotations

import logging
import uuid

from pydantic_ai import exceptions as pai

from switchboard.errors import (
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    SwitchboardError,
    UpstreamRejected,
)

log = logging.getLogger("switchboard.provider")


def retry_after_of(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None)
    if headers is None:
        response = getattr(exc.__cause__, "response", None)
        headers = getattr(response, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def http_status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def classify_provider_error(
    exc: Exception, model: str, *, row_id: uuid.UUID | None = None
) -> SwitchboardError:
    """The error in its class, with a message that summarises status and class only
    (``row_id``: the call's ledger row, named in the operator's log line)."""
    if isinstance(exc, SwitchboardError):
        return exc
    extra = {"llm_request_id": str(row_id)} if row_id is not None else None
    log.warning("provider call to model '%s' failed: %r", model, exc, extra=extra)
    status = http_status_of(exc)
    http = f" (HTTP {status})" if status is not None else ""
    prefix = f"model '{model}': "
    retry_after = retry_after_of(exc)
    if isinstance(exc, pai.ModelRateLimitError | pai.ModelQuotaExceededError) or status == 429:
        return ProviderRateLimited(
            f"{prefix}the provider is rate limiting{http}", retry_after_s=retry_after
        )
    if isinstance(exc, pai.ModelTimeoutError | pai.ModelRequestTimeout | TimeoutError):
        return ProviderTimeout(f"{prefix}the provider did not answer in time")
    if isinstance(exc, pai.ModelAuthenticationError):
        return ProviderMisconfigured(f"{prefix}the provider rejected the credentials{http}")
    if isinstance(exc, pai.ModelUnavailableError | pai.ModelServerError) or (
        status is not None and status >= 500
    ):
        return ProviderUnavailable(
            f"{prefix}the provider is unavailable{http}", retry_after_s=retry_after
        )
    if isinstance(exc, pai.ModelConnectionError | OSError | ConnectionError):
        return ProviderUnavailable(f"{prefix}the provider could not be reached")
    if status is not None:
        return UpstreamRejected(f"{prefix}the provider refused the request{http}")
    return UpstreamRejected(
        f"{prefix}the provider's response could not be used ({type(exc).__name__})"
    )
