"""Keyset (cursor) pagination over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.errors import AwfdrsError

RowT = TypeVar("RowT")
MAX_LIMIT = 500
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (≤ 500)")]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]


class InvalidCursor(AwfdrsError):
    """The cursor was not produced by this API."""

    status = 422
    title = "Validation failed"


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    """Return an opaque cursor pointing just after (`at`, `row_id`)."""
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Parse a cursor or fail with 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        # In UTC, as PostgreSQL compares it: a forged cursor may hold a time with no UTC form.
        return datetime.fromisoformat(at).astimezone(UTC), uuid.UUID(str(row_id))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursor("cursor: not a cursor returned by this API") from exc


def after_cursor(at_column: Any, id_column: Any, cursor: str | None) -> ColumnElement[bool] | None:
    """Return the WHERE clause that continues a newest-first listing after `cursor`."""
    if cursor is None:
        return None
    at, row_id = decode_cursor(cursor)
    return or_(at_column < at, and_(at_column == at, id_column < row_id))


def next_cursor(rows: list[Any], limit: int, at_attr: str) -> str | None:
    """Return the cursor of the next page when `rows` (fetched with limit+1) overflowed."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(getattr(last, at_attr), last.id)


async def fetch_page(
    session: AsyncSession,
    query: SelectOfScalar[RowT],
    *,
    model: type[Any],
    at: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[RowT], str | None]:
    """Run a newest-first keyset page of `query` ordered by (`at`, id); return rows and cursor."""
    at_column, id_column = getattr(model, at), model.id
    if (after := after_cursor(at_column, id_column, cursor)) is not None:
        query = query.where(after)
    query = query.order_by(col(at_column).desc(), col(id_column).desc()).limit(limit + 1)
    rows = list((await session.exec(query)).all())
    return rows[:limit], next_cursor(rows, limit, at)
