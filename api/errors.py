"""Domain exceptions and their mapping to RFC 9457 problem+json responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.db import UNAVAILABLE_ERRORS
from observability import correlation_id_var

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class AwfdrsError(Exception):
    """Base of every error the API turns into a problem response."""

    status = 500
    title = "Internal error"
    default_headers: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: Mapping[str, str] | None = self.default_headers


class Unauthorized(AwfdrsError):
    """No credential, or one that matches no active key."""

    status = 401
    title = "Unauthorized"
    default_headers: ClassVar[Mapping[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class Forbidden(AwfdrsError):
    """The credential is valid but may not do this."""

    status = 403
    title = "Forbidden"


class NotFound(AwfdrsError):
    """The object does not exist for this tenant."""

    status = 404
    title = "Not found"


class Conflict(AwfdrsError):
    """The request conflicts with the current state."""

    status = 409
    title = "Conflict"


class PayloadTooLarge(AwfdrsError):
    """The request body exceeds its limit."""

    status = 413
    title = "Payload too large"


class RateLimited(AwfdrsError):
    """The caller is over its rate; `Retry-After` says when to come back."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: float, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers = {"Retry-After": str(max(1, round(retry_after_s + 0.499)))}


class ServiceUnavailable(AwfdrsError):
    """A dependency is down; the request changed nothing and may be retried."""

    status = 503
    title = "Service unavailable"
    default_headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "2"}


class ProblemResponse(JSONResponse):
    """A problem+json body, ASCII-escaped."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        """Serialise `content`; escaping keeps an echoed lone surrogate from failing the reply."""
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """Build an RFC 9457 problem response carrying the request's correlation id."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "correlation_id": correlation_id_var.get(),
        **extensions,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


async def _awfdrs_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AwfdrsError)
    return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extensions)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    where = ", ".join(
        ".".join(str(part) for part in error.get("loc", ())) + ": " + str(error.get("msg", ""))
        for error in exc.errors()[:5]
    )
    return problem(422, "Validation failed", where or "invalid request", errors=errors)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, _reason(exc.status_code), str(exc.detail), headers=exc.headers)


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", type(exc).__name__)
    return problem(
        503,
        "Service unavailable",
        "postgresql is unavailable; nothing was stored, retry later",
        headers={"Retry-After": "2"},
        dependency="postgresql",
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal error", "an unexpected error occurred; see the server log")


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_error_handlers(app: FastAPI) -> None:
    """Map every error family to problem+json once, for the whole app."""
    app.add_exception_handler(AwfdrsError, _awfdrs_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in (
        OperationalError,
        InterfaceError,
        DBAPIError,
        PoolTimeoutError,
        *UNAVAILABLE_ERRORS,
    ):
        app.add_exception_handler(exc_type, _database_down)
    app.add_exception_handler(Exception, _unexpected)
