"""Dates and date-times of scans and treatment events, and the rules that compare them.

Accepted text forms (cohort file cells, ``scans.csv`` cells)
------------------------------------------------------------
* ISO 8601 date ``YYYY-MM-DD`` (date only);
* ISO 8601 date-time ``YYYY-MM-DDTHH:MM``, ``YYYY-MM-DDTHH:MM:SS`` or ``...:SS.ffffff``; a
  space may replace the ``T``;
* DICOM DA ``YYYYMMDD`` (date only) and DICOM DT ``YYYYMMDDHH``, ``YYYYMMDDHHMM``,
  ``YYYYMMDDHHMMSS`` or ``YYYYMMDDHHMMSS.ffffff``.

Time zone rule
--------------
Every value is a naive local wall-clock time, as DICOM stores StudyTime/AcquisitionTime: the
time on the clock of the hospital where the scan or infusion happened. A text value carrying a
UTC offset (``Z``, ``+01:00``, ``-0500``, DICOM ``&+0100``) is refused, because a scan time
cannot be converted without knowing the scanner's zone; write the local time instead. A
``datetime`` object with ``tzinfo`` (from a DICOM TimezoneOffsetFromUTC) keeps its wall-clock
time and drops the offset. Daylight-saving changes can therefore shift an interval by one hour
(0.04 days), which is negligible for treatment timelines.

Comparisons
-----------
* Both values with a time: differences in fractional days (``seconds / 86400``); a scan is
  *after* an infusion when its time is strictly later (a scan at the very minute of an infusion
  counts as before it: imaging precedes the infusion).
* Either value date-only: differences in whole calendar days; a scan on an earlier or later
  day is before or after; on the same day the configured rule ``timepoints.same_day_date_only``
  decides (default ``before``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from metrics.settings import SameDayRule

_SECONDS_PER_DAY = 86400.0

_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?$"
)
_DICOM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
    r"(?:(?P<h>\d{2})(?:(?P<mi>\d{2})(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?)?$"
)
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|&[+-]\d{4})$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class EventTime:
    """A naive local date-time, or a date without time (then ``value`` is at 00:00)."""

    value: datetime
    has_time: bool

    def __post_init__(self) -> None:
        if self.value.tzinfo is not None:
            raise ValueError("EventTime holds naive local times; drop the tzinfo first")
        if not self.has_time and self.value.time() != datetime.min.time():
            raise ValueError(f"a date-only EventTime must sit at 00:00, got {self.value.isoformat()}")

    @classmethod
    def from_date(cls, day: date) -> EventTime:
        return cls(datetime(day.year, day.month, day.day), has_time=False)

    @classmethod
    def from_datetime(cls, moment: datetime) -> EventTime:
        """A date-time; an aware ``datetime`` keeps its wall-clock time (see the time zone rule)."""
        return cls(moment.replace(tzinfo=None), has_time=True)

    @property
    def day(self) -> date:
        return self.value.date()

    def iso(self) -> str:
        """``YYYY-MM-DD`` for a date, ``YYYY-MM-DDTHH:MM:SS`` (``.ffffff`` when non-zero) otherwise."""
        if not self.has_time:
            return self.day.isoformat()
        spec = "microseconds" if self.value.microsecond else "seconds"
        return self.value.isoformat(timespec=spec)


def parse_event_time(text: str) -> EventTime:
    """Parse one of the accepted forms (module notes).

    Raises
    ------
    ValueError
        With a sentence naming the accepted forms, for anything else (including UTC offsets
        and impossible dates like 2025-02-30).
    """
    raw = text.strip()
    if _OFFSET.search(raw) and not _DICOM.match(raw):
        raise ValueError(
            f"{raw!r} carries a time-zone offset; write the local wall-clock time without offset "
            "(times are naive local times, like DICOM)"
        )
    match = _ISO.match(raw) or _DICOM.match(raw)
    if match is None:
        raise ValueError(
            f"{raw!r} is not a date or date-time; use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], "
            "YYYY-MM-DD HH:MM[:SS], YYYYMMDD or YYYYMMDDHHMM[SS]"
        )
    parts = match.groupdict()
    try:
        if parts["h"] is None:
            return EventTime.from_date(date(int(parts["y"]), int(parts["mo"]), int(parts["d"])))
        fraction = (parts["f"] or "").ljust(6, "0")
        moment = datetime(
            int(parts["y"]),
            int(parts["mo"]),
            int(parts["d"]),
            int(parts["h"]),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
            int(fraction or 0),
        )
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a valid calendar date or time ({exc})") from None
    return EventTime.from_datetime(moment)


def to_event_time(value: object) -> EventTime | None:
    """An :class:`EventTime` from ``None``/``""``, a ``datetime``, a ``date`` or accepted text."""
    if value is None:
        return None
    if isinstance(value, EventTime):
        return value
    if isinstance(value, datetime):
        return EventTime.from_datetime(value)
    if isinstance(value, date):
        return EventTime.from_date(value)
    if isinstance(value, str):
        return parse_event_time(value) if value.strip() else None
    raise TypeError(f"expected a date, date-time or text, got {type(value).__name__}")


def days_between(later: EventTime, earlier: EventTime) -> float:
    """``later - earlier`` in days: fractional when both have a time, whole calendar days otherwise."""
    if later.has_time and earlier.has_time:
        return (later.value - earlier.value) / timedelta(seconds=1) / _SECONDS_PER_DAY
    return float((later.day - earlier.day).days)


def is_after(scan: EventTime, event: EventTime, *, same_day: SameDayRule) -> bool:
    """Whether a scan counts as taken after an event (strictly later; same-day rule for dates)."""
    if scan.has_time and event.has_time:
        return scan.value > event.value
    if scan.day != event.day:
        return scan.day > event.day
    return same_day is SameDayRule.AFTER


def same_day_ambiguous(scan: EventTime, event: EventTime) -> bool:
    """Same calendar day and at least one side without a time: the ordering came from the rule."""
    return scan.day == event.day and not (scan.has_time and event.has_time)
