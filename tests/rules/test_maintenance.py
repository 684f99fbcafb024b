"""Maintenance windows: glob matching and RRULE occurrences."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from rules.maintenance import Matchers, Schedule, Window, covering, parse_recurrence

SUNDAY_2AM = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # a Sunday
WEEKLY = Schedule(SUNDAY_2AM, timedelta(hours=2), "FREQ=WEEKLY;BYDAY=SU")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_a_weekly_window_covers_each_sunday_from_two_to_four() -> None:
    assert WEEKLY.occurrence_at(at(13, 2)) == (at(13, 2), at(13, 4))
    assert WEEKLY.occurrence_at(at(13, 3, 59)) == (at(13, 2), at(13, 4))
    assert WEEKLY.occurrence_at(at(13, 4)) is None  # the end is exclusive
    assert WEEKLY.occurrence_at(at(13, 1, 59)) is None
    assert WEEKLY.occurrence_at(at(9, 3)) is None  # a Wednesday


def test_the_next_occurrence_is_the_current_one_else_the_following_start() -> None:
    assert WEEKLY.next_occurrence(at(13, 3)) == (at(13, 2), at(13, 4))
    assert WEEKLY.next_occurrence(at(13, 4)) == (at(20, 2), at(20, 4))
    assert WEEKLY.next_occurrence(at(1, 0)) == (at(6, 2), at(6, 4))  # before the first


def test_a_rule_with_until_ends_and_a_one_off_window_has_one_occurrence() -> None:
    twice = Schedule(SUNDAY_2AM, timedelta(hours=2), "FREQ=WEEKLY;COUNT=2")
    assert twice.next_occurrence(at(13, 5)) is None
    until = Schedule(SUNDAY_2AM, timedelta(hours=1), "RRULE:FREQ=DAILY;UNTIL=20261208T000000Z")
    assert until.occurrence_at(at(7, 2, 30)) == (at(7, 2), at(7, 3))
    assert until.occurrence_at(at(8, 2, 30)) is None
    once = Schedule(SUNDAY_2AM, timedelta(minutes=30))
    assert once.next_occurrence(at(1, 0)) == (at(6, 2), at(6, 2, 30))
    assert once.occurrence_at(at(6, 2, 29)) == (at(6, 2), at(6, 2, 30))
    assert once.next_occurrence(at(6, 2, 30)) is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=MINUTELY", "at most daily"),
        ("FREQ=HOURLY", "at most daily"),
        ("FREQ=DAILY;BYHOUR=1,2", "one value"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS not supported"),
        ("FREQ=DAILY;BYMONTHDAY=3", "takes no BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "exist in a month"),  # dateutil: to 9999
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "no occurrence within"),
        ("FREQ=DAILY;UNTIL=20200101T000000Z", "no occurrence within"),
        ("FREQ=WEEKLY;BYMONTH=13", "BYMONTH must be 1 to 12"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;UNTIL=20270101T000000", "UTC"),
        ("FREQ=FORTNIGHTLY", "at most daily"),
        ("FREQ=WEEKLY;BYDAY=XX", "not a valid RRULE"),
        ("DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", "one RRULE"),
        ("every sunday", "one RRULE"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(rule: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        parse_recurrence(rule, SUNDAY_2AM)
    assert time.monotonic() - started < 0.5  # refused without walking to the year 9999


def test_a_series_ends_after_five_years_and_count_still_counts() -> None:
    forever = Schedule(SUNDAY_2AM, timedelta(hours=1), "FREQ=YEARLY")
    assert forever.next_occurrence(datetime(2031, 12, 7, tzinfo=UTC)) is None
    assert forever.occurrence_at(datetime(2030, 12, 6, 2, 30, tzinfo=UTC)) is not None
    leap = Schedule(SUNDAY_2AM, timedelta(hours=1), "FREQ=YEARLY;COUNT=2;BYMONTH=2;BYMONTHDAY=29")
    assert leap.next_occurrence(at(7, 0)) == (
        datetime(2028, 2, 29, 2, tzinfo=UTC),
        datetime(2028, 2, 29, 3, tzinfo=UTC),
    )
    assert leap.next_occurrence(datetime(2028, 3, 1, tzinfo=UTC)) is None  # 2032 is past 5 y


def test_matchers_are_exact_or_globs_and_a_star_matches_a_missing_field() -> None:
    billing = Matchers(workflow="billing-*", vendor="stripe")
    rest: dict[str, str | None] = {"error_code": None, "step": None}
    assert billing.match(workflow="billing-sync", vendor="stripe", **rest)
    assert not billing.match(workflow="billing-sync", vendor="Stripe", **rest)  # case-sensitive
    assert not billing.match(workflow="billing-sync", vendor=None, **rest)
    assert not billing.match(workflow="xbilling-sync", vendor="stripe", **rest)  # whole value
    coded = Matchers(error_code="VENDOR_?IMEOUT", step="charge-[ab]")
    assert coded.match(workflow="w", vendor=None, error_code="VENDOR_TIMEOUT", step="charge-a")
    assert not coded.match(workflow="w", vendor=None, error_code="VENDOR_TIMEOUT", step=None)


def test_covering_keeps_matching_windows_in_force_latest_end_first() -> None:
    short = Window("a", Matchers(), Schedule(at(6, 2), timedelta(hours=1)), "hold", "short")
    long = Window("b", Matchers(), WEEKLY, "suppress", "long")
    other = Window("c", Matchers(workflow="other"), WEEKLY, "suppress", "other")
    found = covering(
        [short, long, other], at(6, 2, 30), workflow="w", vendor=None, error_code=None, step=None
    )
    assert [window.id for window, _ in found] == ["b", "a"]
    assert covering([short], at(6, 3), workflow="w", vendor=None, error_code=None, step=None) == []
