"""Values PostgreSQL cannot store, found in request input before any of it reaches the database.

PostgreSQL refuses NUL in text and jsonb, invalid UTF-8 (lone surrogates), NaN and ±Infinity
in jsonb, and timestamps outside its range once converted to UTC; this API also refuses JSON
nested deeper than `MAX_JSON_DEPTH`. Each is reported at its path, so the client learns which
field to fix instead of getting a 5xx from the insert.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

MAX_JSON_DEPTH = 64
MAX_REPORTED = 20
Loc = tuple[str | int, ...]
NUL = "nul_character"
BAD_UNICODE = "invalid_unicode"
NOT_FINITE = "finite_number"
TOO_DEEP = "json_too_deep"
BAD_DATETIME = "datetime_out_of_range"
UNSTORABLE_TYPES = frozenset({NUL, BAD_UNICODE, NOT_FINITE, TOO_DEEP, BAD_DATETIME})
TOO_DEEP_MESSAGE = f"nests deeper than {MAX_JSON_DEPTH} levels"
# Validation context of input already found storable as a whole: its models skip their walk.
CHECKED: dict[str, bool] = {"storable": True}


@dataclass(frozen=True)
class Unstorable:
    """One value PostgreSQL cannot store, at its path in the input."""

    loc: Loc
    kind: str
    message: str


def string_problem(text: str) -> tuple[str, str] | None:
    """Return (error type, message) when PostgreSQL cannot store `text`, else None."""
    if "\x00" in text:
        return NUL, "must not contain the NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return BAD_UNICODE, "must be valid Unicode (no lone surrogates such as \\ud800)"
    return None


def shown(text: str) -> str:
    """Return `text` safe to echo in a response or a log line (NUL and surrogates escaped)."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _leaf_problem(value: object) -> tuple[str, str] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return NOT_FINITE, "must be a finite number: NaN and Infinity cannot be stored"
    if isinstance(value, str):
        return string_problem(value)
    return None


def _children(
    container: dict[Any, Any] | list[Any] | tuple[Any, ...],
    loc: Loc,
    found: list[Unstorable],
) -> Iterator[tuple[object, Loc]]:
    if not isinstance(container, dict):
        yield from ((child, (*loc, index)) for index, child in enumerate(container))
        return
    for key, child in container.items():
        problem = string_problem(key) if isinstance(key, str) else None
        if problem is None:
            yield child, (*loc, key)
        else:
            found.append(Unstorable((*loc, shown(key)), problem[0], f"field name {problem[1]}"))


def _storable(value: object, depth: int) -> bool:
    # The fast exact test without paths, for the common case where all is well; its
    # recursion stops at MAX_JSON_DEPTH, so it stays shallow whatever the input.
    if isinstance(value, str):
        return "\x00" not in value and (value.isascii() or string_problem(value) is None)
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            return False
        for key, child in value.items():
            if isinstance(key, str) and string_problem(key) is not None:
                return False
            if not _storable(child, depth + 1):
                return False
        return True
    if isinstance(value, list | tuple):
        return depth < MAX_JSON_DEPTH and all(_storable(child, depth + 1) for child in value)
    return not isinstance(value, float) or math.isfinite(value)


def all_storable(value: object) -> bool:
    """Tell whether every value in parsed JSON can be stored (one walk, no paths)."""
    return _storable(value, 0)


def find_unstorable(value: object, *, skip: frozenset[str] = frozenset()) -> list[Unstorable]:
    """Walk parsed JSON and report (up to 20) values PostgreSQL cannot store, in order.

    `skip` names top-level fields whose items are validated one by one later.
    """
    checked = (
        {k: v for k, v in value.items() if k not in skip}
        if isinstance(value, dict) and skip
        else value
    )
    if _storable(checked, 0):
        return []
    found: list[Unstorable] = []
    # Iterative on purpose: input may nest hundreds of levels, beyond Python's recursion limit.
    stack: list[tuple[object, Loc, int]] = [(value, (), 0)]
    while stack and len(found) < MAX_REPORTED:
        item, loc, depth = stack.pop()
        if not isinstance(item, dict | list | tuple):
            if (problem := _leaf_problem(item)) is not None:
                found.append(Unstorable(loc, *problem))
            continue
        if depth >= MAX_JSON_DEPTH:
            found.append(Unstorable(loc, TOO_DEEP, TOO_DEEP_MESSAGE))
            continue
        children = [
            (child, child_loc, depth + 1)
            for child, child_loc in _children(item, loc, found)
            if not (depth == 0 and child_loc[-1] in skip)
        ]
        stack.extend(reversed(children))
    return found[:MAX_REPORTED]


def unstorable_error(title: str, found: list[Unstorable]) -> ValidationError:
    """Build the ValidationError reporting `found`, each at its own path."""
    return ValidationError.from_exception_data(
        title,
        [
            {"type": PydanticCustomError(item.kind, item.message), "loc": item.loc, "input": None}
            for item in found
        ],
    )


def utc_representable(value: datetime) -> datetime:
    """Return `value` (naive read as UTC) if it has a UTC form, which PostgreSQL stores."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        aware.astimezone(UTC)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+14:00 is in year 0 in UTC, which no datetime can hold.
        raise PydanticCustomError(
            BAD_DATETIME, "is out of range once converted to UTC (years 1 to 9999)"
        ) from None
    return aware


def storable_text(value: str) -> str:
    """Return `value` if PostgreSQL can store it; for parameters validated one by one."""
    if (problem := string_problem(value)) is not None:
        raise PydanticCustomError(*problem)
    return value


UtcDateTime = Annotated[datetime, AfterValidator(utc_representable)]
StorableText = Annotated[str, AfterValidator(storable_text)]


class StorableModel(BaseModel):
    """Input refused at the path of any value PostgreSQL cannot store, before field checks."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _only_storable_values(cls, data: Any, info: ValidationInfo) -> Any:
        # A batch walks its whole body once (`CHECKED`) instead of once per item and model.
        if isinstance(data, dict) and not (info.context and info.context.get("storable")):
            found = find_unstorable(data, skip=cls.per_item_fields)
            if found:
                raise unstorable_error(cls.__name__, found)
        return data
