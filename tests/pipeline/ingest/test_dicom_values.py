"""Interpretation of individual DICOM values."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from pipeline.ingest.dicom_values import (
    decoder_available,
    dicom_datetime,
    earliest_moment,
    moment_sort_key,
    stored_padding,
)


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        ("20100227", "123456.789", datetime(2010, 2, 27, 12, 34, 56)),
        ("20100227", "", date(2010, 2, 27)),  # no time (de-identified): a date, not 00:00
        ("20100227", "   ", date(2010, 2, 27)),
        ("20100227000000", "", datetime(2010, 2, 27)),  # midnight written out is a time
        ("20100227", "1230", datetime(2010, 2, 27, 12, 30)),
        ("20100227", "12:30:05", datetime(2010, 2, 27, 12, 30, 5)),
        ("1999.05.24", "", date(1999, 5, 24)),
        ("20100227", "0000", datetime(2010, 2, 27)),
        ("20100227123456.5+0100", "", datetime(2010, 2, 27, 12, 34, 56)),
        ("20100227", "2599", date(2010, 2, 27)),  # malformed time: the date survives, without a time
        ("2010022712", "", datetime(2010, 2, 27, 12)),
        ("", "", None),
        ("2010", "", None),
        ("20101399", "", None),
    ],
)
def test_dicom_datetime(date, time, expected):
    value = dicom_datetime(date, time)
    assert value == expected and type(value) is type(expected)


def test_dates_and_date_times_sort_together():
    day, morning, evening = date(2010, 2, 27), datetime(2010, 2, 27, 8), datetime(2010, 2, 27, 20)
    earlier = datetime(2010, 2, 26, 23, 59)
    assert sorted([evening, day, morning, earlier], key=moment_sort_key) == [earlier, day, morning, evening]
    assert earliest_moment([None, evening, day, morning]) == morning  # a known time beats a bare date
    assert earliest_moment([None, day, date(2010, 2, 26)]) == date(2010, 2, 26)
    assert earliest_moment([None, None]) is None


@pytest.mark.parametrize(
    ("value", "representation", "bits", "expected"),
    [
        (63536, 1, 16, -2000),  # LIDC: written unsigned for signed pixels
        (-2000, 1, 16, -2000),
        (-2000, 0, 16, 63536),
        (0, 0, 16, 0),
        (None, 1, 16, None),
    ],
)
def test_stored_padding(value, representation, bits, expected):
    assert stored_padding(value, pixel_representation=representation, bits_allocated=bits) == expected


def test_decoders_for_the_transfer_syntaxes_of_the_issue():
    for uid in (
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.1.99",  # deflated
    ):
        assert decoder_available(uid), uid
    assert not decoder_available("1.2.840.10008.1.2.4.100")  # MPEG-2
    assert not decoder_available("1.2.3.4")
