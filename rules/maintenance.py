"""Maintenance windows as pure data: matching an event and finding occurrences in time.

A window covers `[start, start + length)` once, or once per occurrence of its RFC 5545 RRULE
(DTSTART is the window's `starts_at`). Matchers are exact values or fnmatch-style globs on the
whole value, case-sensitive; `*` also matches an event that has no such field.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from dateutil.rrule import rrule, rruleset, rrulestr

# dateutil walks occurrences from DTSTART (about a millisecond per day a rule filters out), so
# a rule repeats at most daily, expands to at most one time of day, and a series spans at most
# MAX_SERIES: the worst rule costs about two seconds once per process, then lookups are cached.
ALLOWED_FREQ = frozenset({"DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
ALLOWED_PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR"}
    | {"BYMINUTE"}
)
SINGLE_VALUED = frozenset({"BYHOUR", "BYMINUTE"})
DAYS_IN_MONTH = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
_RULE_TEXT = re.compile(r"^(RRULE:)?[A-Z]+=[A-Za-z0-9,+\-:]+(;[A-Z]+=[A-Za-z0-9,+\-:]+)*$")
# A series ends at most this long after its first start (UNTIL, if given, may end it sooner).
MAX_SERIES = timedelta(days=5 * 365 + 1)
Occurrence = tuple[datetime, datetime]


@dataclass(frozen=True)
class Matchers:
    """The fields a window matches; each an exact value or a glob (`*`: anything)."""

    workflow: str = "*"
    vendor: str = "*"
    error_code: str = "*"
    step: str = "*"

    def match(
        self, *, workflow: str, vendor: str | None, error_code: str | None, step: str | None
    ) -> bool:
        """Tell whether an event (or incident) with these fields falls under the window."""
        pairs = (
            (self.workflow, workflow),
            (self.vendor, vendor),
            (self.error_code, error_code),
            (self.step, step),
        )
        return all(_field_matches(pattern, value) for pattern, value in pairs)


def _field_matches(pattern: str, value: str | None) -> bool:
    if pattern == "*":
        return True
    return value is not None and fnmatchcase(value, pattern)


@lru_cache(maxsize=1024)
def parse_recurrence(recurrence: str, dtstart: datetime) -> rrule | rruleset:
    """Parse an RRULE anchored at `dtstart`, bounded to MAX_SERIES; raise ValueError saying
    what is wrong."""
    if not _RULE_TEXT.match(recurrence):
        raise ValueError("must be one RRULE, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2")
    _check_parts(recurrence.removeprefix("RRULE:"))
    try:
        rule = rrulestr(recurrence, dtstart=dtstart, cache=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from exc
    if not isinstance(rule, rrule):
        raise ValueError("must be one RRULE")
    bounded = _bounded(rule, dtstart)
    if bounded.after(dtstart, inc=True) is None:
        raise ValueError(f"has no occurrence within {MAX_SERIES.days} days of starts_at")
    return bounded


def _check_parts(text: str) -> None:
    parts = dict(part.split("=", 1) for part in text.split(";"))
    if parts.get("FREQ") not in ALLOWED_FREQ:
        raise ValueError("may repeat at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)")
    if unknown := sorted(parts.keys() - ALLOWED_PARTS):
        raise ValueError(f"{', '.join(unknown)} not supported (use {', '.join(ALLOWED_PARTS)})")
    if many := sorted(k for k in SINGLE_VALUED if "," in parts.get(k, "")):
        raise ValueError(f"{', '.join(many)} takes one value (one window per period)")
    if not parts.get("INTERVAL", "1").isdigit() or not 1 <= int(parts.get("INTERVAL", "1")) <= 999:
        raise ValueError("INTERVAL must be 1 to 999")  # 0 makes dateutil repeat one date forever
    if parts["FREQ"] == "DAILY" and parts.keys() & {"BYMONTH", "BYMONTHDAY"}:
        raise ValueError("FREQ=DAILY takes no BYMONTH or BYMONTHDAY (use MONTHLY or YEARLY)")
    if not _some_day_exists(parts):
        raise ValueError("BYMONTH must be 1 to 12, BYMONTHDAY ±1 to ±31 and exist in a month")


def _some_day_exists(parts: dict[str, str]) -> bool:
    """Whether a BYMONTHDAY exists in one of the months (dateutil would search to year 9999)."""
    try:
        months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else []
        days = (
            [abs(int(d)) for d in parts["BYMONTHDAY"].split(",")] if "BYMONTHDAY" in parts else []
        )
    except ValueError:
        return True  # not numbers: dateutil refuses the rule with its own message
    if not all(1 <= m <= 12 for m in months) or not all(1 <= d <= 31 for d in days):
        return False
    longest = max((DAYS_IN_MONTH.get(m, 31) for m in months), default=31)
    return not days or min(days) <= longest


def _bounded(rule: rrule, dtstart: datetime) -> rrule | rruleset:
    """The rule cut at MAX_SERIES after `dtstart`: a rule no date satisfies (30 February)
    would otherwise be searched until the year 9999 on every lookup."""
    bound = dtstart + MAX_SERIES
    # dateutil keeps the parsed COUNT and UNTIL only as private attributes.
    count, until = vars(rule).get("_count"), vars(rule).get("_until")
    if count is None:
        return rule.replace(until=min(until or bound, bound))
    series = rruleset(cache=True)
    for start in itertools.islice(rule.replace(count=None, until=bound), count):
        series.rdate(start)
    return series


@dataclass(frozen=True)
class Schedule:
    """When a window applies: its first start, each occurrence's length, its RRULE if any."""

    starts_at: datetime
    length: timedelta
    recurrence: str | None = None

    def occurrence_at(self, moment: datetime) -> Occurrence | None:
        """The occurrence covering `moment`, or None."""
        start = self._last_start(moment)
        if start is None or moment >= start + self.length:
            return None
        return start, start + self.length

    def next_occurrence(self, moment: datetime) -> Occurrence | None:
        """The occurrence covering `moment`, else the next one to start; None when over."""
        current = self.occurrence_at(moment)
        if current is not None:
            return current
        if self.recurrence is None:
            start: datetime | None = self.starts_at if moment < self.starts_at else None
        else:
            start = parse_recurrence(self.recurrence, self.starts_at).after(moment)
        return None if start is None else (start, start + self.length)

    def _last_start(self, moment: datetime) -> datetime | None:
        if self.recurrence is None:
            return self.starts_at if self.starts_at <= moment else None
        start: datetime | None = parse_recurrence(self.recurrence, self.starts_at).before(
            moment, inc=True
        )
        return start


@dataclass(frozen=True)
class Window:
    """A live window as intake and the gate see it."""

    id: str
    matchers: Matchers
    schedule: Schedule
    mode: str
    reason: str


def covering(
    windows: list[Window],
    moment: datetime,
    *,
    workflow: str,
    vendor: str | None,
    error_code: str | None,
    step: str | None,
) -> list[tuple[Window, Occurrence]]:
    """The windows matching these fields whose occurrence covers `moment`, latest end first."""
    found = [
        (window, occurrence)
        for window in windows
        if window.matchers.match(workflow=workflow, vendor=vendor, error_code=error_code, step=step)
        and (occurrence := window.schedule.occurrence_at(moment)) is not None
    ]
    return sorted(found, key=lambda pair: pair[1][1], reverse=True)


def window_from_record(record: Mapping[str, Any]) -> Window:
    """Build a Window from a `maintenance_windows` row (as columns or as `to_jsonb`)."""
    starts_at = _moment(record["starts_at"])
    if record.get("duration_s") is not None:
        length = timedelta(seconds=int(record["duration_s"]))
    else:
        length = _moment(record["ends_at"]) - starts_at
    return Window(
        id=str(record["id"]),
        matchers=Matchers(
            workflow=record["workflow"],
            vendor=record["vendor"],
            error_code=record["error_code"],
            step=record["step"],
        ),
        schedule=Schedule(starts_at, length, record.get("recurrence")),
        mode=record["mode"],
        reason=record["reason"],
    )


def windows_from_json(value: object) -> list[Window]:
    """Parse a JSON array of rows (a string, or already decoded by the driver)."""
    rows = json.loads(value) if isinstance(value, str) else value
    assert isinstance(rows, list)
    return [window_from_record(row) for row in rows]


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
