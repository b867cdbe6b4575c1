"""Per-scan result records: building them in a run, and checking them before the tables are built.

A *record* is a mapping from ``scans.csv`` column names (the ``input`` and ``metric`` columns of
:data:`metrics.columns.SCAN_COLUMNS`) to values. Values may be native (``datetime``, ``float``,
``bool``, tuples of flags) or the text written in ``scans.csv``, so a run can keep records as
JSON or rebuild the tables from an earlier ``scans.csv``. Columns filled by linking are ignored
on input and recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from metrics.columns import Column, Kind, Source, scan_columns_from
from metrics.timestamps import to_event_time
from metrics.vocabulary import ScanStatus

if TYPE_CHECKING:
    from metrics.scan import ScanMetrics
    from pipeline.errors import ErrorCode
    from pipeline.ingest.scan import ScanMetadata

INPUT_COLUMNS: tuple[Column, ...] = scan_columns_from(Source.INPUT)
#: Columns a ``scans.csv`` written by an earlier version lacks: left empty when it is rebuilt.
COLUMNS_ADDED_LATER = frozenset({"ingest_warnings"})
METRIC_COLUMNS: tuple[Column, ...] = scan_columns_from(Source.METRIC)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def scan_record(
    meta: ScanMetadata,
    *,
    metrics: ScanMetrics | None,
    status: ScanStatus,
    error_code: ErrorCode | None = None,
    error_message: str = "",
    preferred_series: bool = True,
    model_id: str = "",
    model_sha256: str = "",
    pipeline_version: str = "",
) -> dict[str, object]:
    """The record of one scan, from its header metadata and (when measured) its metrics.

    Parameters
    ----------
    meta
        Header facts of the series (``Scan.meta``).
    metrics
        :func:`metrics.scan.measure_scan` result; ``None`` for a failed scan.
    status
        ``ok`` needs ``metrics``; ``failed`` needs an ``error_code``.
    preferred_series
        ``True`` for the series the selection rules chose for its study; ``False`` for extra
        series of the same study (``selection.series_per_study: all``). Duplicate time points
        prefer it.
    """
    status = ScanStatus(status)
    if status is ScanStatus.OK and metrics is None:
        raise ValueError("a scan with status ok needs its metrics")
    if status is ScanStatus.FAILED and error_code is None:
        raise ValueError("a failed scan needs an error_code")
    record: dict[str, object] = {
        "patient_id": meta.patient_id,
        "study_uid": meta.study_uid,
        "series_uid": meta.series_uid,
        "acquisition_datetime": meta.acquisition_datetime,
        "status": status.value,
        "error_code": None if error_code is None else str(getattr(error_code, "value", error_code)),
        "error_message": error_message,
        "scan_id": meta.scan_id,
        "series_number": meta.series_number,
        "series_description": meta.series_description,
        "kernel": meta.kernel,
        "manufacturer": meta.manufacturer,
        "series_datetime": meta.series_datetime,
        "study_datetime": meta.study_datetime,
        "preferred_series": preferred_series,
        "slice_thickness_mm": meta.slice_thickness_mm,
        "ingest_warnings": [w.code for w in meta.warnings],
        "model_id": model_id,
        "model_sha256": model_sha256,
        "pipeline_version": pipeline_version,
    }
    if metrics is not None and status is ScanStatus.OK:
        record.update(metrics.as_row())
    return record


def parse_cell(column: Column, value: object) -> object:
    """A typed value for ``column`` from native or text input (``None`` for an empty cell).

    Floats are rounded to the column's decimals, so that every number computed from a record
    (changes, responses, medians) agrees with the numbers printed in the CSV files, and a table
    rebuilt from ``scans.csv`` is identical to the original.

    Raises
    ------
    ValueError
        If the value does not fit the column's kind.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    kind = column.kind
    if kind is Kind.TEXT:
        return str(getattr(value, "value", value))
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind is Kind.INT:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(number)  # type: ignore[call-overload]
    if kind is Kind.FLOAT:
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        rounded = round(number, column.decimals)  # type: ignore[arg-type]
        return rounded + 0.0  # -0.0 -> 0.0
    if kind is Kind.DATETIME:
        return to_event_time(value)
    if kind is Kind.FLAGS:
        items: Iterable[object] = value.split(";") if isinstance(value, str) else value  # type: ignore[assignment]
        return tuple(sorted({str(getattr(i, "value", i)).strip() for i in items} - {""}))
    raise AssertionError(f"unhandled column kind {kind}")


def load_scan_records(path: Path) -> list[dict[str, str]]:
    """The rows of an existing ``scans.csv`` as records (text cells), to rebuild the tables.

    Raises
    ------
    ValueError
        If the file is not a ``scans.csv`` (missing columns) or is malformed.
    """
    from pipeline.reports.csv_tables import read_table

    rows = read_table(path)
    if rows:
        required = [c for c in INPUT_COLUMNS + METRIC_COLUMNS if c.name not in COLUMNS_ADDED_LATER]
        missing = [c.name for c in required if c.name not in rows[0]]
        if missing:
            raise ValueError(f"{path}: not a lunglesion scans.csv (missing columns {', '.join(missing[:5])}...)")
    return rows


def normalize_record(record: Mapping[str, object], *, index: int) -> dict[str, object]:
    """Typed input and metric columns of one record (linking columns are dropped).

    Raises
    ------
    ValueError
        Naming the record (``index``) and column, on a missing status or a malformed value.
    """
    row: dict[str, object] = {}
    for column in INPUT_COLUMNS + METRIC_COLUMNS:
        try:
            row[column.name] = parse_cell(column, record.get(column.name))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"scan record {index}, column {column.name!r}: {exc}") from None
    try:
        status = ScanStatus(row["status"])
    except ValueError:
        raise ValueError(
            f"scan record {index}, column 'status': expected one of {[s.value for s in ScanStatus]}, "
            f"got {row['status']!r}"
        ) from None
    if row["patient_id"] is None:
        row["patient_id"] = ""
    if row["preferred_series"] is None:
        row["preferred_series"] = True
    if status is ScanStatus.FAILED:
        for column in METRIC_COLUMNS:  # a failed scan has no numbers
            row[column.name] = None
    return row
