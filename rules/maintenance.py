"""Maintenance windows as pure data: matching an event and finding occurrences in time.

A window covers `[start, start + length)` once, or once per occurrence of its RFC 5545 RRULE
(DTSTART is the window's `starts_at`). Matchers are exact values or fnmatch-style globs on the
whole value, case-sensitive; `*` also matches an event that has no such field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from dateutil.rrule import rrule, rrulestr

# Occurrences are walked from DTSTART, so a rule may repeat at most hourly: finer rules would
# make every lookup walk hundreds of thousands of occurrences.
ALLOWED_FREQ = frozenset({"HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
_RULE_TEXT = re.compile(r"^(RRULE:)?[A-Z]+=[A-Za-z0-9,+\-:]+(;[A-Z]+=[A-Za-z0-9,+\-:]+)*$")
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
def parse_recurrence(recurrence: str, dtstart: datetime) -> rrule:
    """Parse an RRULE anchored at `dtstart`; raise ValueError saying what is wrong."""
    if not _RULE_TEXT.match(recurrence):
        raise ValueError("must be one RRULE, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2")
    try:
        rule = rrulestr(recurrence, dtstart=dtstart, cache=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from exc
    if not isinstance(rule, rrule):
        raise ValueError("must be one RRULE")
    freq = re.search(r"FREQ=([A-Z]+)", recurrence)
    if freq is None or freq.group(1) not in ALLOWED_FREQ:
        raise ValueError("may repeat at most hourly (FREQ=HOURLY or coarser)")
    return rule


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
