"""Shapes shared by every API domain."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from models.schemas.storable import Loc, StorableModel, shown

ItemT = TypeVar("ItemT")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$"


class StrictBody(StorableModel):
    """A request body: unknown fields are rejected (no mass assignment), values are storable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[ItemT]):
    """One page of a newest-first listing."""

    items: list[ItemT]
    next_cursor: str | None


class FieldError(BaseModel):
    """One problem with the input, at its path; the shape of problem+json `errors` items."""

    loc: list[str]
    msg: str
    type: str


def field_errors(
    exc: ValidationError, *, relocate: Callable[[Loc], Loc] | None = None
) -> list[FieldError]:
    """Flatten a ValidationError; `relocate` maps each path to where the client sent the value."""
    errors = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc: Loc = tuple(error["loc"])
        if relocate is not None:
            loc = relocate(loc)
        errors.append(
            FieldError(
                loc=[shown(str(part)) for part in loc], msg=shown(error["msg"]), type=error["type"]
            )
        )
    return errors


def relocator(table: Mapping[str, Loc]) -> Callable[[Loc], Loc]:
    """Return a `relocate` replacing the longest path prefix found in `table` (dotted keys)."""

    def relocate(loc: Loc) -> Loc:
        for length in range(len(loc), 0, -1):
            source = table.get(".".join(str(part) for part in loc[:length]))
            if source is not None:
                return (*source, *loc[length:])
        return loc

    return relocate


def summary(errors: list[FieldError], limit: int = 3) -> str:
    """Render errors as `path: message; …` (the first `limit`)."""
    return "; ".join(f"{'.'.join(e.loc)}: {e.msg}" for e in errors[:limit])
