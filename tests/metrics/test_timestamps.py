"""Accepted date/date-time forms, the time-zone rule and the comparison rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from metrics.settings import SameDayRule
from metrics.timestamps import EventTime, days_between, is_after, parse_event_time, same_day_ambiguous, to_event_time


@pytest.mark.parametrize(
    ("text", "value", "has_time"),
    [
        ("2025-03-01", datetime(2025, 3, 1), False),
        ("2025-03-01T10:00", datetime(2025, 3, 1, 10, 0), True),
        ("2025-03-01T10:00:30", datetime(2025, 3, 1, 10, 0, 30), True),
        ("2025-03-01 10:00", datetime(2025, 3, 1, 10, 0), True),
        ("2025-03-01 10:00:30.5", datetime(2025, 3, 1, 10, 0, 30, 500000), True),
        ("20250301", datetime(2025, 3, 1), False),
        ("2025030110", datetime(2025, 3, 1, 10), True),
        ("202503011005", datetime(2025, 3, 1, 10, 5), True),
        ("20250301100507", datetime(2025, 3, 1, 10, 5, 7), True),
        ("20250301100507.25", datetime(2025, 3, 1, 10, 5, 7, 250000), True),
        ("  2025-03-01T10:00  ", datetime(2025, 3, 1, 10, 0), True),
    ],
)
def test_accepted_forms(text, value, has_time):
    parsed = parse_event_time(text)
    assert parsed == EventTime(value, has_time)


@pytest.mark.parametrize(
    "text", ["2025-03-01T10:00Z", "2025-03-01T10:00+01:00", "2025-03-01 10:00-0500", "20250301100000&+0100"]
)
def test_offsets_are_refused(text):
    with pytest.raises(ValueError, match="time-zone offset"):
        parse_event_time(text)


@pytest.mark.parametrize(
    "text", ["2025-02-30", "2025-13-01", "01.03.2025", "3/1/2025", "2025-03-01T25:00", "yesterday", ""]
)
def test_invalid_values_are_refused(text):
    with pytest.raises(ValueError):
        parse_event_time(text)


def test_iso_output():
    assert parse_event_time("20250301").iso() == "2025-03-01"
    assert parse_event_time("2025-03-01T10:00").iso() == "2025-03-01T10:00:00"
    assert parse_event_time("2025-03-01T10:00:00.25").iso() == "2025-03-01T10:00:00.250000"


def test_native_values_and_the_time_zone_rule():
    assert to_event_time(None) is None and to_event_time("  ") is None
    assert to_event_time(date(2025, 3, 1)) == EventTime(datetime(2025, 3, 1), False)
    aware = datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert to_event_time(aware) == EventTime(datetime(2025, 3, 1, 10, 0), True)  # wall clock kept
    with pytest.raises(TypeError):
        to_event_time(20250301)
    with pytest.raises(ValueError):
        EventTime(datetime(2025, 3, 1, 10), has_time=False)


def test_days_between_fractional_or_calendar():
    a = parse_event_time("2025-03-01T10:00")
    b = parse_event_time("2025-03-03T22:00")
    assert days_between(b, a) == 2.5
    assert days_between(a, b) == -2.5
    d = parse_event_time("2025-03-03")
    assert days_between(d, a) == 2.0  # whole calendar days when one side has no time
    assert days_between(parse_event_time("2025-03-01T23:59"), parse_event_time("2025-03-01")) == 0.0


def test_is_after_by_time_of_day_and_same_day_rule():
    infusion = parse_event_time("2025-03-01T10:00")
    assert not is_after(parse_event_time("2025-03-01T09:59"), infusion, same_day=SameDayRule.BEFORE)
    assert not is_after(parse_event_time("2025-03-01T10:00"), infusion, same_day=SameDayRule.AFTER)  # equal: before
    assert is_after(parse_event_time("2025-03-01T10:01"), infusion, same_day=SameDayRule.BEFORE)
    date_only = parse_event_time("2025-03-01")
    scan = parse_event_time("2025-03-01T18:00")
    assert not is_after(scan, date_only, same_day=SameDayRule.BEFORE)
    assert is_after(scan, date_only, same_day=SameDayRule.AFTER)
    assert is_after(parse_event_time("2025-03-02T00:01"), date_only, same_day=SameDayRule.BEFORE)
    assert same_day_ambiguous(scan, date_only) and not same_day_ambiguous(scan, infusion)
