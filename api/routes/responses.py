"""OpenAPI documentation of the problem+json error responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.schemas.common import FieldError

_DESCRIPTIONS = {
    401: "Missing, unknown or revoked API key",
    403: "Key lacks the scope, or the tenant is deactivated",
    404: "No such object for this tenant",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation failed; `errors` lists each problem",
    429: "Over the rate limit; see `Retry-After`",
    503: "A dependency is down; nothing was changed",
}


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    correlation_id: str | None
    errors: list[FieldError] | None = Field(
        default=None, description="On 422: each problem, at its path"
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return `responses=` entries documenting the given error statuses."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }
