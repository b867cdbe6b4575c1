"""The index as a CSV file (one row per series) and as a readable table.

``INDEX_COLUMNS`` starts with the columns named in the user's specification, in that order;
more columns follow. Skipped files go to a second CSV (``SKIPPED_COLUMNS``), so that every row
of the index CSV is a series.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, datetime
from itertools import groupby
from pathlib import Path

from pipeline.ingest.candidate import IndexResult, SeriesCandidate
from pipeline.io.atomic import atomic_open

#: Columns of the index CSV. The first fifteen are an interface (names and order fixed).
INDEX_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "study_uid",
    "series_uid",
    "modality",
    "series_description",
    "n_files",
    "size_x",
    "size_y",
    "size_z",
    "spacing_x",
    "spacing_y",
    "spacing_z",
    "selected",
    "reason",
    "error_code",
    "scan_id",
    "series_part",
    "series_number",
    "study_date",
    "study_time",
    "acquisition_datetime",
    "manufacturer",
    "model",
    "kernel",
    "slice_thickness",
    "image_type",
    "n_images",
    "transfer_syntax",
    "lossy_compression",
    "tilt_deg",
    "warnings",
    "warning_details",
    "study_error_code",
    "source_kind",
    "source_path",
)

#: Columns of the skipped-files CSV.
SKIPPED_COLUMNS: tuple[str, ...] = ("path", "error_code", "reason")


def number(value: float | None) -> str:
    """Stable text for a float: up to 6 significant digits, no trailing zeros."""
    if value is None:
        return ""
    return f"{value:.6g}"


def _clock(moment: date | None) -> str:
    """``HH:MM:SS`` of a date-time; empty for a date without time (never an invented 00:00:00)."""
    return moment.strftime("%H:%M:%S") if isinstance(moment, datetime) else ""


def index_row(candidate: SeriesCandidate, *, study_error_code: str = "") -> dict[str, str]:
    """One CSV row (all values as text) for a candidate."""
    size = candidate.size
    spacing = candidate.spacing
    warnings = candidate.all_warnings
    return {
        "patient_id": candidate.patient_id,
        "study_uid": candidate.study_uid,
        "series_uid": candidate.series_uid,
        "modality": candidate.modality,
        "series_description": candidate.series_description,
        "n_files": str(candidate.n_files),
        "size_x": str(size[0]) if size else "",
        "size_y": str(size[1]) if size else "",
        "size_z": str(size[2]) if size else "",
        "spacing_x": number(spacing[0]) if spacing else "",
        "spacing_y": number(spacing[1]) if spacing else "",
        "spacing_z": number(spacing[2]) if spacing else "",
        "selected": "true" if candidate.selected else "false",
        "reason": candidate.reason,
        "error_code": candidate.error_code.value if candidate.error_code else "",
        "scan_id": candidate.scan_id,
        "series_part": candidate.series_part,
        "series_number": "" if candidate.series_number is None else str(candidate.series_number),
        "study_date": candidate.study_datetime.strftime("%Y-%m-%d") if candidate.study_datetime else "",
        "study_time": _clock(candidate.study_datetime),
        "acquisition_datetime": candidate.acquisition_datetime.isoformat() if candidate.acquisition_datetime else "",
        "manufacturer": candidate.manufacturer,
        "model": candidate.manufacturer_model,
        "kernel": candidate.kernel,
        "slice_thickness": number(candidate.slice_thickness_mm),
        "image_type": "\\".join(candidate.image_type or ()),
        "n_images": str(candidate.n_images),
        "transfer_syntax": "\\".join(candidate.transfer_syntax_uids),
        "lossy_compression": "true" if candidate.lossy else "false",
        "tilt_deg": number(round(candidate.tilt_deg, 3)) if candidate.tilt_deg else "0",
        "warnings": ";".join(w.code.value for w in warnings),
        "warning_details": " | ".join(w.message for w in warnings),
        "study_error_code": study_error_code,
        "source_kind": candidate.source_kind.value,
        "source_path": candidate.source_path,
    }


def index_rows(result: IndexResult) -> list[dict[str, str]]:
    """Rows of the index CSV, in candidate order."""
    study_errors = {(issue.patient_id, issue.study_uid): issue.code.value for issue in result.study_issues}
    rows = []
    for candidate in result.candidates:
        key = (candidate.patient_id, candidate.study_uid)
        rows.append(index_row(candidate, study_error_code=study_errors.get(key, "")))
    return rows


def write_rows(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """Write ``rows`` (dicts keyed by ``columns``) as CSV with ``\\n`` line ends, atomically."""
    with atomic_open(Path(path), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_index_csv(result: IndexResult, path: Path) -> None:
    """Write the index CSV (one row per series) atomically."""
    write_rows(path, INDEX_COLUMNS, index_rows(result))


def write_skipped_csv(result: IndexResult, path: Path) -> None:
    """Write the skipped-files CSV (one row per file indexing could not use) atomically."""
    rows = [{"path": issue.path, "error_code": issue.code.value, "reason": issue.message} for issue in result.skipped]
    write_rows(path, SKIPPED_COLUMNS, rows)


def _study_title(candidates: list[SeriesCandidate]) -> str:
    first = candidates[0]
    when = first.study_datetime.strftime("%Y-%m-%d") if first.study_datetime else "date unknown"
    if first.source_kind.value == "volume_file":
        return f"volume file {first.series_description}"
    uid = first.study_uid
    shown = uid if len(uid) <= 24 else f"...{uid[-20:]}"
    return f"study {when}  {shown or '(no StudyInstanceUID)'}  ({len(candidates)} series)"


def format_index_table(result: IndexResult, *, max_skipped: int = 20) -> str:
    """A plain-text table of every series (grouped by study), study issues and skipped files.

    Patient identifiers are not printed (the CSV has them); scan ids identify the series.
    """
    out = io.StringIO()
    header = (
        f"  {'scan_id':<12}  {'ser':>5}  {'description':<28}  {'files':>5}  {'size':<13}  {'spacing mm':<19}  "
        "sel  reason"
    )
    issues = {(issue.patient_id, issue.study_uid): issue for issue in result.study_issues}
    study_of = {c.scan_id: (c.patient_id, c.study_uid or f"volume:{c.scan_id}") for c in result.candidates}
    for _, group in groupby(result.candidates, key=lambda c: study_of[c.scan_id]):
        members = list(group)
        out.write(_study_title(members) + "\n")
        out.write(header + "\n")
        for c in members:
            size = "x".join(str(v) for v in c.size) if c.size else "-"
            spacing = "x".join(f"{v:.3g}" for v in c.spacing) if c.spacing else "-"
            description = c.series_description + (f" [{c.series_part}]" if c.series_part else "")
            if len(description) > 28:
                description = description[:27] + "~"
            series_number = "" if c.series_number is None else str(c.series_number)
            code = f"{c.error_code.value}: " if c.error_code else ""
            text = c.reason.removeprefix("not selected: ").removeprefix("selected: ")
            out.write(
                f"  {c.scan_id:<12}  {series_number:>5}  {description:<28}  {c.n_files:>5}  {size:<13}  "
                f"{spacing:<19}  {'yes' if c.selected else 'no':<3}  {code}{text}\n"
            )
        issue = issues.get((members[0].patient_id, members[0].study_uid))
        if issue is not None:
            out.write(f"  ! {issue.code.value}: {issue.message}\n")
        out.write("\n")
    if result.skipped:
        counts = Counter(issue.code.value for issue in result.skipped)
        summary = ", ".join(f"{code} x{n}" for code, n in sorted(counts.items()))
        out.write(f"Skipped {len(result.skipped)} files ({summary}):\n")
        for issue in result.skipped[:max_skipped]:
            out.write(f"  {issue.code.value:<24}  {issue.path}: {issue.message}\n")
        if len(result.skipped) > max_skipped:
            rest = len(result.skipped) - max_skipped
            out.write(f"  ... and {rest} more (all of them are in the skipped-files CSV)\n")
        out.write("\n")
    n_studies = len(set(study_of.values()))
    out.write(
        f"{len(result.candidates)} series in {n_studies} studies, {len(result.selected)} selected; "
        f"{result.n_files_seen} files seen, {len(result.skipped)} skipped; indexed in {result.elapsed_s:.1f} s\n"
    )
    return out.getvalue()
