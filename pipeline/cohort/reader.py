"""Read and validate a cohort CSV file (format: ``metrics/README.md``, section "Cohort file").

Every problem raises :class:`~pipeline.errors.CohortError` naming the line and the column;
messages never repeat patient identifiers (the user knows which line to open).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from metrics.timestamps import EventTime, parse_event_time
from pipeline.cohort.model import Cohort, CohortEvent, ReservedEvent, ScanOverride
from pipeline.errors import CohortError, ErrorCode, LunglesionError

if TYPE_CHECKING:
    from _csv import Reader

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "event", "datetime")
OPTIONAL_COLUMNS: tuple[str, ...] = ("series_uid", "study_uid", "dicom_patient_id", "note")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_MAX_UID = 64
_DELIMITERS = (",", ";", "\t")
_INFUSION_LIKE = re.compile(r"infus|(?<![a-z])dose")
"""Event names that mean an infusion unless spelt exactly ``infusion`` (``Infusion 2``, ``dose``)."""


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"cohort file not found: {path}") from None
    except IsADirectoryError:
        raise CohortError(f"{path}: is a folder, expected a CSV file") from None
    except OSError as exc:
        raise CohortError(f"{path}: cannot read the cohort file ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CohortError(f"{path}: line {line}: not UTF-8 text (save the file as UTF-8 CSV)") from None


def _delimiter(header_line: str) -> str:
    for delimiter in _DELIMITERS:
        if delimiter in header_line:
            return delimiter
    return ","


def _header(cells: list[str], *, where: str) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    for index, name in enumerate(names):
        if name not in allowed:
            raise CohortError(
                f"{where}: unknown column {cells[index].strip()!r} (column {index + 1}); allowed: {', '.join(allowed)}"
            )
        if names.index(name) != index:
            raise CohortError(f"{where}: column {name!r} appears twice")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise CohortError(
            f"{where}: missing required column(s) {', '.join(missing)}; the header must name "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    return names


def _uid(value: str, *, where: str, column: str) -> str | None:
    if not value:
        return None
    if len(value) > _MAX_UID or not _UID.match(value):
        raise CohortError(f"{where}, column {column!r}: not a DICOM UID (digits separated by dots, at most 64)")
    return value


def _records(reader: Reader, *, path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` of each record; one record must be one physical line.

    A quoted value running over line ends is almost always an unbalanced ``"`` (``"first dose``)
    that makes the CSV module swallow the following rows into one cell, so it is refused, as is
    any other malformed quoting (the reader is strict).
    """
    previous = 0
    while True:
        start = previous + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CohortError(
                f"{path}: line {start}: malformed CSV ({exc}); check for an unbalanced quote '\"' "
                "(a value that starts with '\"' must end with '\"' on the same line)"
            ) from None
        previous = reader.line_num
        if previous > start or any("\n" in cell or "\r" in cell for cell in cells):
            raise CohortError(
                f"{path}: line {start}: a quoted value runs over lines {start}-{previous}, which would merge "
                "rows; check for an unbalanced quote '\"' (values may not contain line breaks)"
            )
        yield start, cells


def _closest_to_infusion(name: str) -> bool:
    """Whether an event name other than ``infusion`` looks like a misspelt infusion."""
    return bool(_INFUSION_LIKE.search(name)) or _edit_distance(name, ReservedEvent.INFUSION.value) <= 1


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions (``infusoin`` is 1 from ``infusion``)."""
    rows = [list(range(len(b) + 1))]
    for i, char_a in enumerate(a, start=1):
        row = [i]
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            best = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                best = min(best, rows[-2][j - 2] + 1)
            row.append(best)
        rows.append(row)
    return rows[-1][-1]


def _event_name(value: str, *, where: str) -> str:
    """The normalised event name (lower case, single spaces); misspelt infusions are refused."""
    event = " ".join(value.lower().split())
    if not event:
        raise CohortError(f"{where}, column 'event': empty (e.g. infusion, admission, discharge, scan)")
    if event != ReservedEvent.INFUSION.value and _closest_to_infusion(event):
        raise CohortError(
            f"{where}, column 'event': {event!r} looks like an infusion but only the exact name 'infusion' "
            "counts as a dose (one row per dose, numbered in time order; no dose number in the name); "
            "write 'infusion', or name another event without 'infus' or 'dose'"
        )
    return event


def _check_dicom_ids(dicom_ids: dict[str, tuple[str, int]], first_lines: dict[str, int], *, path: Path) -> None:
    """A ``dicom_patient_id`` may not be another cohort patient's ``patient_id``.

    The scans with that PatientID would otherwise be taken from the patient who has it as
    cohort ID (the map wins over the scan's own PatientID), silently.
    """
    for dicom_id, (patient, line) in sorted(dicom_ids.items(), key=lambda item: item[1][1]):
        if dicom_id != patient and dicom_id in first_lines:
            raise CohortError(
                f"{path}: line {line}, column 'dicom_patient_id': equals the patient_id of another cohort "
                f"patient (line {first_lines[dicom_id]}), whose scans it would take; a DICOM PatientID "
                "that is also a cohort patient_id may only map to that patient"
            )


def read_cohort(path: str | Path) -> Cohort:
    """Read a cohort CSV file.

    Raises
    ------
    CohortError
        On any invalid content (naming the line and the column).
    LunglesionError
        ``INPUT_NOT_FOUND`` when the file does not exist.
    """
    path = Path(path)
    text = _decode(path)
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if header_index is None:
        raise CohortError(f"{path}: the file is empty; expected a header line 'patient_id,event,datetime'")
    delimiter = _delimiter(lines[header_index])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    columns: list[str] | None = None

    events: list[CohortEvent] = []
    patients: dict[str, int] = {}  # patient ID -> its first line
    series: dict[str, ScanOverride] = {}
    studies: dict[str, ScanOverride] = {}
    dicom_ids: dict[str, tuple[str, int]] = {}
    seen_events: dict[tuple[str, str, EventTime], int] = {}

    for line, cells in _records(reader, path=path):
        where = f"{path}: line {line}"
        if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
            continue
        if columns is None:
            columns = _header(cells, where=where)
            continue
        if len(cells) > len(columns):
            raise CohortError(f"{where}: {len(cells)} values for {len(columns)} columns (check the delimiter)")
        row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(columns)}

        patient = row["patient_id"]
        if not patient:
            raise CohortError(f"{where}, column 'patient_id': empty")
        event = _event_name(row["event"], where=where)
        time: EventTime | None = None
        if row["datetime"]:
            try:
                time = parse_event_time(row["datetime"])
            except ValueError as exc:
                raise CohortError(f"{where}, column 'datetime': {exc}") from None
        series_uid = _uid(row.get("series_uid", ""), where=where, column="series_uid")
        study_uid = _uid(row.get("study_uid", ""), where=where, column="study_uid")
        patients.setdefault(patient, line)

        dicom_id = row.get("dicom_patient_id", "")
        if dicom_id:
            known = dicom_ids.get(dicom_id)
            if known is not None and known[0] != patient:
                raise CohortError(
                    f"{where}, column 'dicom_patient_id': this DICOM PatientID is already mapped to another "
                    f"patient on line {known[1]}"
                )
            dicom_ids.setdefault(dicom_id, (patient, line))

        if event == ReservedEvent.SCAN.value:
            if series_uid is None and study_uid is None:
                raise CohortError(f"{where}: a 'scan' row needs a series_uid or a study_uid")
            override = ScanOverride(patient, series_uid, study_uid, time, line)
            for uid, table, column in ((series_uid, series, "series_uid"), (study_uid, studies, "study_uid")):
                if uid is None:
                    continue
                if uid in table:
                    raise CohortError(
                        f"{where}, column {column!r}: the same UID is already assigned on line {table[uid].line}"
                    )
                table[uid] = override
            continue
        if series_uid is not None or study_uid is not None:
            raise CohortError(
                f"{where}: series_uid/study_uid belong on 'scan' rows only (this row's event is {event!r})"
            )
        if time is None:
            raise CohortError(f"{where}, column 'datetime': empty (required for event {event!r})")
        key = (patient, event, time)
        if key in seen_events:
            raise CohortError(
                f"{where}: repeats the {event!r} event of line {seen_events[key]} (same patient, same time)"
            )
        seen_events[key] = line
        events.append(CohortEvent(patient, event, time, line))

    if columns is None:
        raise CohortError(f"{path}: the file has no header line 'patient_id,event,datetime'")
    if not patients:
        raise CohortError(f"{path}: the file has a header but no rows")
    _check_same_day_infusions(events, path=path)
    _check_dicom_ids(dicom_ids, patients, path=path)

    events.sort(key=lambda e: (e.patient_id, e.time, e.event, e.line))
    log.info(
        "cohort file: %d patients, %d events (%d infusions), %d scan assignments",
        len(patients),
        len(events),
        sum(e.event == ReservedEvent.INFUSION.value for e in events),
        len(series) + len(studies),
    )
    return Cohort(
        events=tuple(events),
        patient_ids=tuple(sorted(patients)),
        series_overrides=dict(sorted(series.items())),
        study_overrides=dict(sorted(studies.items())),
        dicom_ids={dicom: patient for dicom, (patient, _) in sorted(dicom_ids.items())},
    )


def _check_same_day_infusions(events: list[CohortEvent], *, path: Path) -> None:
    """Two infusions of one patient on one day, one without a time, cannot be put in order."""
    by_day: dict[tuple[str, object], list[CohortEvent]] = {}
    for event in events:
        if event.event == ReservedEvent.INFUSION.value:
            by_day.setdefault((event.patient_id, event.time.day), []).append(event)
    for same_day in by_day.values():
        if len(same_day) > 1 and any(not e.time.has_time for e in same_day):
            lines = sorted(e.line for e in same_day)
            raise CohortError(
                f"{path}: line {lines[-1]}, column 'datetime': two infusions of one patient on the same day "
                f"(lines {', '.join(map(str, lines))}) and at least one has no time, so their order is unknown; "
                "give both times"
            )
