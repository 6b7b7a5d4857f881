"""The one place that maps the error taxonomy to HTTP. Every error body is
``{"error": {"code", "message", "retryable"[, "details"]}}``; no stack trace ever leaves."""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from switchboard import logs
from switchboard.api.request_ids import log_context_of
from switchboard.errors import (
    BudgetExceeded,
    Conflict,
    ErrorKind,
    FatalError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermanentError,
    SwitchboardError,
    TransientError,
    Unauthenticated,
    UpstreamRejected,
)

log = logging.getLogger("switchboard.api")

# Most specific class first.
_STATUS: list[tuple[type[SwitchboardError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (BudgetExceeded, 402),
    (PayloadTooLarge, 413),
    (InvalidRequest, 422),
    (UpstreamRejected, 502),
    (PermanentError, 400),
    (TransientError, 503),
    (FatalError, 500),
]
# Codes whose status is not their class's.
_CODE_STATUS = {
    "INVALID_JSON": 400,
    "INVALID_CURSOR": 400,
    "INVALID_QUERY": 400,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RUN_CANCELLED": 409,
}
_HTTP_CODES = {
    400: "INVALID_JSON",  # the framework's "error parsing the body" (e.g. not UTF-8)
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def status_for(error: SwitchboardError) -> int:
    if error.code in _CODE_STATUS:
        return _CODE_STATUS[error.code]
    return next(status for cls, status in _STATUS if isinstance(error, cls))


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine code, e.g. AGENT_ALREADY_EXISTS")
    message: str
    retryable: bool = Field(
        description="true for transient errors: the same request may "
        "succeed later (see Retry-After)"
    )
    error_class: Literal["transient", "permanent", "fatal"] = Field(alias="class")
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request (INVALID_JSON, INVALID_CURSOR, …)",
        401: "Missing, invalid or revoked API key",
        403: "Not allowed with this key",
        404: "Unknown resource, or another account's",
        409: "Conflict (already exists, disabled, …)",
        413: "Body too large",
        415: "A JSON route was sent a body that is not application/json",
        422: "Invalid fields or values",
        503: "Transient: retry after Retry-After",
    }.items()
}


def error_body(
    code: str,
    message: str,
    *,
    retryable: bool,
    kind: ErrorKind | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "retryable": retryable,
        "class": kind or ("transient" if retryable else "permanent"),
    }
    if details:
        error["details"] = details
    return {"error": error}


class ErrorResponse(JSONResponse):
    """An error body, rendered even when it quotes a client's invalid text (a lone surrogate
    is replaced, never a 500 while reporting a 4xx)."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", errors="replace")


def error_response(error: SwitchboardError) -> JSONResponse:
    status = status_for(error)
    # The official OpenAI SDKs (and others) retry 408/409/429/5xx unless told otherwise.
    headers: dict[str, str] = {"x-should-retry": "true" if error.retryable else "false"}
    if isinstance(error, TransientError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s or 1)))
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500:
        log.error("request failed: %s (%s)", error, error.kind)
    return ErrorResponse(
        error_body(
            error.code,
            error.message,
            retryable=error.retryable,
            kind=error.kind,
            details=error.details,
        ),
        status_code=status,
        headers=headers,
    )


def validation_error(exc: RequestValidationError) -> SwitchboardError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidRequest("the request body is not valid JSON", code="INVALID_JSON")
    if isinstance(exc.body, bytes | bytearray) and exc.body:
        # FastAPI keeps the raw bytes only when the Content-Type was not JSON
        return InvalidRequest(
            "this route takes a JSON body: send Content-Type: application/json",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidRequest(f"invalid request: {listed}", details={"problems": problems})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette's 405 names only the
    first route that matched the path). Asked of the routes themselves, method by method."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def on_switchboard_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SwitchboardError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code.lower()
        if exc.status_code == 400:
            message = "the request body could not be read as JSON (is it UTF-8?)"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return ErrorResponse(
            error_body(code, message, retryable=exc.status_code >= 500),
            status_code=exc.status_code,
            headers=headers,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette calls this outside every middleware: the request's ids come from its scope.
        context = log_context_of(request.scope)
        with logs.replaced(context):
            log.exception("unhandled error", exc_info=exc)
        request_id = context.get("request_id")
        return ErrorResponse(
            error_body("INTERNAL_ERROR", "internal server error", retryable=False, kind="fatal"),
            status_code=500,
            headers={"X-Request-ID": request_id} if request_id else None,
        )

    app.add_exception_handler(SwitchboardError, on_switchboard_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
