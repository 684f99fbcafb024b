"""The `[since, until)` window of the report routes: defaults, order and length checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.exceptions import RequestValidationError


def _aware(value: datetime | None) -> datetime | None:
    """Read a timestamp without an offset as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error", "input": None}]
    )


def report_window(
    since: datetime | None,
    until: datetime | None,
    *,
    default: timedelta,
    longest: timedelta | None = None,
) -> tuple[datetime, datetime]:
    """The window `[start, end)`: `until` defaults to now, `since` to `default` before it (422s)."""
    end = _aware(until) or datetime.now(UTC)
    try:
        start = _aware(since) or end - default
    except OverflowError:  # `until` too close to year 1 to count the default back from
        raise _invalid("until", "is too early to count a default window back from") from None
    if start >= end:
        raise _invalid("since", "must be before until")
    if longest is not None and end - start > longest:
        raise _invalid("since", f"the window may span at most {longest.days} days")
    return start, end
