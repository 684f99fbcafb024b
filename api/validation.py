"""Request guards: JSON parsed leniently so validation can name each bad value; clean parameters."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from models.schemas.common import FieldError, field_errors, summary
from models.schemas.storable import TOO_DEEP, TOO_DEEP_MESSAGE, Loc, shown, string_problem


class InvalidJson(ValueError):
    """The body is not JSON this API can read."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class InvalidItem:
    """One item of a multi-item body refused by validation."""

    error: str  # the first problems as one line, with paths inside the item
    errors: list[FieldError]  # every problem, with its path in the whole body


def invalid_item(
    exc: ValidationError, *, prefix: Loc, relocate: Callable[[Loc], Loc] | None = None
) -> InvalidItem:
    """Describe an item whose validation raised `exc`; `prefix` is the item's path."""
    inside = field_errors(exc, relocate=relocate)
    return InvalidItem(
        error=summary(inside),
        errors=[
            error.model_copy(update={"loc": [*map(str, prefix), *error.loc]}) for error in inside
        ],
    )


def loads_json(raw: bytes) -> Any:
    """Parse JSON, keeping NaN, Infinity and lone surrogates for validation to report by path."""
    # The stdlib parser, not pydantic's: it accepts every value the validators then name, so
    # one bad item of a batch is refused alone instead of failing the parse of the whole body.
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidJson(TOO_DEEP_MESSAGE, TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, undecodable bytes, over-long integers
        raise InvalidJson(f"Invalid JSON: {exc}", "json_invalid") from None


def json_body(raw: bytes) -> Any:
    """Parse a JSON body, or raise the 422 that names `body`."""
    try:
        return loads_json(raw)
    except InvalidJson as exc:
        raise RequestValidationError(
            [{"loc": ["body"], "msg": str(exc), "type": exc.kind}]
        ) from None


def invalid(errors: list[FieldError]) -> RequestValidationError:
    """Return the 422 listing `errors`."""
    return RequestValidationError([error.model_dump() for error in errors])


async def reject_unstorable_parameters(request: Request) -> None:
    """Refuse query and path parameters with NUL (or invalid Unicode), naming each one."""
    # PostgreSQL cannot compare text holding NUL: filtering by such a value fails the query.
    errors = []
    for where, pairs in (
        ("path", list(request.path_params.items())),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in pairs:
            problem = string_problem(str(name)) or string_problem(str(value))
            if problem is not None:
                loc = [where, shown(str(name))]
                errors.append(FieldError(loc=loc, msg=problem[1], type=problem[0]))
    if errors:
        raise invalid(errors)
