"""Interpreting DICOM values: dates and times, padding values, decoder availability."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import date as calendar_date
from datetime import datetime

_NATIVE_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
)


@functools.cache
def decoder_available(transfer_syntax_uid: str) -> bool:
    """Whether an installed pydicom pixel decoder handles this transfer syntax."""
    if transfer_syntax_uid in _NATIVE_SYNTAXES:
        return True
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(transfer_syntax_uid).is_available)
    except (NotImplementedError, ValueError, KeyError):
        return False


def dicom_datetime(date: str, time: str = "") -> datetime | calendar_date | None:
    """A DICOM DA (+ TM) or DT value as a naive ``datetime``; ``None`` when absent or malformed.

    Without a usable time (TM empty, as after de-identification, or malformed; a DT holding only
    a date) the result is a ``datetime.date``: a date-only value is never given an invented time
    of day (00:00), so linking compares it with infusions by calendar day. Old-style separators
    (``1999.05.24``, ``12:30:00``) are accepted; fractions of seconds and time-zone offsets are
    dropped. A date and a datetime do not compare: sort with :func:`moment_sort_key`.
    """
    date = (date or "").strip()
    if len(date) == 10 and date[4] in ".-" and date[7] in ".-":  # old-style DA: 1999.05.24
        date = date[:4] + date[5:7] + date[8:]
    elif len(date) > 8:  # a DT value: YYYYMMDDHHMMSS.FFFFFF&ZZXX
        date, time = date[:8], re.split(r"[+\-]", date[8:], maxsplit=1)[0]
    if len(date) != 8 or not date.isdigit():
        return None
    try:
        day = datetime.strptime(date, "%Y%m%d").date()
    except ValueError:
        return None
    clock = (time or "").strip().split(".")[0].replace(":", "")
    if not clock.isdigit():
        return day
    try:
        return datetime.strptime(date + clock[:6].ljust(6, "0"), "%Y%m%d%H%M%S")
    except ValueError:
        return day  # a malformed time still leaves the date


def moment_sort_key(value: calendar_date) -> tuple[datetime, bool]:
    """Sort key for :func:`dicom_datetime` values: time order, a date-only value first on its day.

    Matches the order of :class:`metrics.timestamps.EventTime` (a date sits at the start of its day).
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=None), True
    return datetime(value.year, value.month, value.day), False


def earliest_moment(values: Iterable[calendar_date | None]) -> calendar_date | None:
    """The earliest value with a time of day, else the earliest date (``None`` when all are ``None``).

    For the acquisition time of a series whose images disagree on whether a time was kept.
    """
    present = [v for v in values if v is not None]
    timed = [v for v in present if isinstance(v, datetime)]
    return min(timed or present, key=moment_sort_key, default=None)


def stored_padding(value: int | None, *, pixel_representation: int | None, bits_allocated: int | None) -> int | None:
    """PixelPaddingValue brought into the range of the stored values.

    Archives write padding with the wrong signedness (LIDC: 63536 for -2000 in signed
    pixels); the value is wrapped into the range the pixels actually use.
    """
    if value is None:
        return None
    bits = bits_allocated or 16
    if pixel_representation == 1 and value >= 2 ** (bits - 1):
        return value - 2**bits
    if pixel_representation == 0 and value < 0:
        return value + 2**bits
    return value
