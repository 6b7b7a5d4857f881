"""Errors on the OpenAI surface look like OpenAI's: ``{"error": {"message", "type", "param",
"code"}}``, with the statuses and headers its SDKs act on (``x-should-retry``, ``Retry-After``).
The taxonomy is the server's own; only its rendering differs from the REST API's."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel

from switchboard.api.errors import ErrorBody, ErrorResponse, status_for, validation_error
from switchboard.errors import (
    BudgetExceeded,
    InvalidRequest,
    NotFound,
    ProviderBusy,
    ProviderRateLimited,
    SwitchboardError,
    TransientError,
    Unauthenticated,
)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {"AGENT_NOT_FOUND": "model_not_found", "UNAUTHENTICATED": "invalid_api_key"}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """An error as OpenAI's API renders it."""

    error: OpenAIErrorDetail


# The routes' own errors are OpenAI's shape; the few answered before a route runs (a body over
# the size limit, an unknown path or method) keep the server's.
OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorBody | ErrorBody, "description": description}
    for status, description in {
        400: "Invalid or unsupported request (code names it; param the field)",
        401: "Missing, invalid or revoked API key (invalid_api_key)",
        403: "Not allowed with this key",
        404: "Unknown model (model_not_found), or another account's",
        409: "Conflict (conversation_busy under multitask_strategy=reject, agent disabled)",
        413: "Body too large",
        415: "Not a JSON body",
        429: "Limits (Retry-After) or budget (insufficient_quota / budget_exceeded)",
        502: "The provider refused the request",
        503: "Transient: retry after Retry-After",
    }.items()
}


def unsupported(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, code="UNSUPPORTED_PARAMETER", details={"param": param})


def openai_status(error: SwitchboardError) -> int:
    if isinstance(error, BudgetExceeded | ProviderBusy | ProviderRateLimited):
        return 429  # what OpenAI clients expect of limits and quotas
    status = status_for(error)
    return 400 if status == 422 else status


def openai_error_body(error: SwitchboardError) -> dict[str, Any]:
    status = openai_status(error)
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if isinstance(error, BudgetExceeded):
        kind = "insufficient_quota"
    details: dict[str, Any] = error.details or {}
    param = details.get("param")
    problems = details.get("problems")
    if param is None and isinstance(problems, list) and problems:
        param = str(problems[0]["field"]).removeprefix("body.")
    return {
        "error": {
            "message": error.message,
            "type": kind,
            "param": param,
            "code": _CODES.get(error.code, error.code.lower()),
        }
    }


def openai_error_response(error: SwitchboardError) -> Response:
    headers = {"x-should-retry": "true" if error.retryable else "false"}
    if isinstance(error, TransientError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s or 1)))
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return ErrorResponse(
        openai_error_body(error), status_code=openai_status(error), headers=headers
    )


class OpenAIRoute(APIRoute):
    """A route whose errors (validation, authentication, the run's own) render OpenAI-style."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SwitchboardError as error:
                return openai_error_response(error)
            except RequestValidationError as exc:
                return openai_error_response(validation_error(exc))

        return route


def model_not_found(model: str) -> NotFound:
    return NotFound(
        f"The model '{model}' does not exist or you do not have access to it.",
        code="AGENT_NOT_FOUND",
        details={"param": "model"},
    )
