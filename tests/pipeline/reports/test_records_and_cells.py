"""Per-scan records and CSV cell formatting."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from metrics.columns import SCAN_COLUMNS, Column, Kind, by_name
from metrics.timestamps import EventTime
from metrics.vocabulary import ScanStatus
from pipeline.errors import ErrorCode
from pipeline.reports import scan_record
from pipeline.reports.csv_tables import format_cell, read_table, write_table
from pipeline.reports.records import normalize_record, parse_cell

COLUMNS = by_name(SCAN_COLUMNS)


def test_scan_record_from_metadata(records):
    ok, failed = records[0], records[4]
    assert ok["status"] == "ok" and ok["error_code"] is None and ok["lung_ml"] > 0
    assert ok["acquisition_datetime"] == datetime(2025, 2, 28, 9) and ok["kernel"] == "B30f"
    assert failed["status"] == "failed" and failed["error_code"] == "DECODE_FAILED" and "lung_ml" not in failed


def test_parse_cell_kinds():
    assert parse_cell(COLUMNS["lesion_pct"], "12.345678") == 12.3457
    assert (
        parse_cell(COLUMNS["lesion_pct"], -0.00001) == 0.0
        and math.copysign(1, parse_cell(COLUMNS["lesion_pct"], -0.00001)) == 1
    )
    assert parse_cell(COLUMNS["lesion_pct"], float("nan")) is None
    assert parse_cell(COLUMNS["severity_score"], "12") == 12
    assert parse_cell(COLUMNS["preferred_series"], "false") is False
    assert parse_cell(COLUMNS["acquisition_datetime"], "2025-03-01T10:00:00") == EventTime(
        datetime(2025, 3, 1, 10), True
    )
    assert parse_cell(COLUMNS["quality_flags"], "B;A") == ("A", "B")
    assert parse_cell(COLUMNS["status"], ScanStatus.OK) == "ok"
    for column, value in (("severity_score", "1.5"), ("preferred_series", "maybe"), ("lung_ml", "inf")):
        with pytest.raises(ValueError):
            parse_cell(COLUMNS[column], value)


def test_failed_records_lose_their_numbers(records):
    row = normalize_record(dict(records[0], status="failed", error_code="OUT_OF_MEMORY"), index=3)
    assert row["lung_ml"] is None and row["quality_flags"] is None and row["error_code"] == "OUT_OF_MEMORY"
    assert normalize_record({"status": "ok"}, index=0)["patient_id"] == ""
    assert normalize_record({"status": "ok"}, index=0)["preferred_series"] is True


def test_format_cell():
    f = Column("x_pct", Kind.FLOAT, "%", "x", 4)
    assert format_cell(f, -0.00001) == "0.0000"
    assert format_cell(f, -1.23456) == "-1.2346"
    assert format_cell(f, float("nan")) == "" and format_cell(f, None) == ""
    assert format_cell(Column("b", Kind.BOOL, "", "b"), False) == "false"
    assert format_cell(Column("d", Kind.DATETIME, "", "d"), datetime(2025, 3, 1, 10)) == "2025-03-01T10:00:00"
    assert format_cell(Column("d", Kind.DATETIME, "", "d"), "20250301") == "2025-03-01"
    assert format_cell(Column("f", Kind.FLAGS, "", "f"), ("Z", "A", "Z")) == "A;Z"
    assert format_cell(Column("s", Kind.TEXT, "", "s"), ErrorCode.DECODE_FAILED) == "DECODE_FAILED"


def test_write_and_read_table_roundtrip(tmp_path):
    columns = (Column("name", Kind.TEXT, "", "n"), Column("v_pct", Kind.FLOAT, "%", "v", 2))
    path = write_table(tmp_path / "t.csv", columns, [{"name": 'a, "quoted"', "v_pct": 1.005}, {"name": "b"}])
    assert path.read_bytes() == b'name,v_pct\n"a, ""quoted""",1.00\nb,\n'
    assert read_table(path) == [{"name": 'a, "quoted"', "v_pct": "1.00"}, {"name": "b", "v_pct": ""}]


def test_scan_record_requires_consistent_status(records):
    from pipeline.ingest.scan import ScanMetadata

    meta = ScanMetadata(
        scan_id="s",
        patient_id="P",
        study_uid="1",
        series_uid="2",
        series_number=None,
        series_description="",
        modality="CT",
        study_datetime=None,
        series_datetime=None,
        acquisition_datetime=None,
        manufacturer="",
        manufacturer_model="",
        kernel="",
        slice_thickness_mm=None,
        spacing_mm=(1, 1, 1),
        size=(1, 1, 1),
        n_files=1,
        source_files=(),
    )
    with pytest.raises(ValueError, match="needs its metrics"):
        scan_record(meta, metrics=None, status=ScanStatus.OK)
    with pytest.raises(ValueError, match="needs an error_code"):
        scan_record(meta, metrics=None, status=ScanStatus.FAILED)


def test_scan_time_takes_a_kept_time_of_day_over_a_date_only_acquisition():
    from datetime import date, datetime

    from metrics.timestamps import EventTime
    from metrics.vocabulary import DatetimeSource
    from pipeline.reports.linking import resolve_time

    acquisition = EventTime.from_date(date(2025, 3, 3))
    series = EventTime.from_datetime(datetime(2025, 3, 3, 14, 5))
    study_other_day = EventTime.from_datetime(datetime(2025, 3, 2, 23, 50))
    record = {"acquisition_datetime": acquisition, "series_datetime": series, "study_datetime": study_other_day}
    assert resolve_time(record, None) == (series, DatetimeSource.SERIES)
    # A time of another day does not replace the acquisition's date.
    record = {"acquisition_datetime": acquisition, "study_datetime": study_other_day}
    assert resolve_time(record, None) == (acquisition, DatetimeSource.ACQUISITION)
    # All timed: the acquisition, as before.
    timed = EventTime.from_datetime(datetime(2025, 3, 3, 14, 1))
    assert resolve_time({"acquisition_datetime": timed, "series_datetime": series}, None)[0] == timed
