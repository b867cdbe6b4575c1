"""``errors.csv``: every input the run could not use, one row each, with a code and a sentence."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ErrorCode
from pipeline.io.atomic import atomic_open

ERROR_COLUMNS = ("level", "error_code", "message", "patient_id", "study_uid", "series_uid", "scan_id", "path")

#: File codes that mean "not ours" rather than "broken": listed, but not counted as failures.
#: (At file level, NON_IMAGE_OBJECT is a DICOMDIR index: its images are read directly.)
IGNORED_FILE_CODES = frozenset({ErrorCode.NOT_DICOM, ErrorCode.NON_IMAGE_OBJECT})


@dataclass(frozen=True)
class ErrorRow:
    """One row of ``errors.csv``."""

    level: str
    """``file``, ``study``, ``series`` (a series of a study without any usable one) or ``scan``."""
    error_code: str
    message: str
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    scan_id: str = ""
    path: str = ""

    @property
    def is_failure(self) -> bool:
        """Whether this row makes the run end with exit code 3."""
        return not (self.level == "file" and self.error_code in IGNORED_FILE_CODES)


def scan_error_rows(records: Iterable[Mapping[str, str]]) -> list[ErrorRow]:
    """Rows for the failed scans among formatted scan records."""
    return [
        ErrorRow(
            level="scan",
            error_code=record.get("error_code", ""),
            message=record.get("error_message", ""),
            patient_id=record.get("patient_id", ""),
            study_uid=record.get("study_uid", ""),
            series_uid=record.get("series_uid", ""),
            scan_id=record.get("scan_id", ""),
        )
        for record in records
        if record.get("status") == "failed"
    ]


def write_errors_csv(path: Path, rows: Iterable[ErrorRow], *, redact: Callable[[str], str]) -> Path:
    """Write the rows sorted (level, ids, path), with free text passed through ``redact``."""
    ordered = sorted(rows, key=lambda r: (r.level, r.patient_id, r.study_uid, r.series_uid, r.scan_id, r.path))
    with atomic_open(Path(path), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ERROR_COLUMNS)
        for row in ordered:
            writer.writerow(
                [
                    row.level,
                    row.error_code,
                    redact(row.message),
                    row.patient_id,
                    row.study_uid,
                    row.series_uid,
                    row.scan_id,
                    redact(row.path),
                ]
            )
    return Path(path)
