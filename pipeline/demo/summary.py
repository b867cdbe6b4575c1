"""Compare the demo run's measurements with the truth the generator knows."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from metrics.settings import ResponseSettings
from pipeline.demo.generate import TruthRow


@dataclass(frozen=True)
class ComparisonRow:
    """One demo CT: true and measured lesion burden, and the response labels."""

    patient_id: str
    course: str
    days_from_first_infusion: float
    phase: str
    status: str
    true_lesion_pct: float
    measured_lesion_pct: float | None
    true_response: str
    measured_response: str
    true_lung_ml: float
    measured_lung_ml: float | None
    error_code: str = ""

    @property
    def difference_pp(self) -> float | None:
        if self.measured_lesion_pct is None:
            return None
        return self.measured_lesion_pct - self.true_lesion_pct


def true_responses(truth: Sequence[TruthRow], *, settings: ResponseSettings) -> dict[str, str]:
    """Response label of every CT after the first infusion, computed from the true lesion %.

    Uses the same rule as the pipeline (:func:`metrics.timepoints.classify_response`) with the
    baseline = the patient's last CT before the first infusion. Keys are series UIDs.
    """
    from metrics.timepoints import change_from, classify_response

    labels: dict[str, str] = {}
    by_patient: dict[str, list[TruthRow]] = {}
    for row in truth:
        by_patient.setdefault(row.patient_id, []).append(row)
    for rows in by_patient.values():
        rows.sort(key=lambda r: r.days_from_first_infusion)
        before = [r for r in rows if r.days_from_first_infusion < 0]
        if not before:
            continue
        baseline = round(before[-1].lesion_pct, 4)
        for row in rows:
            if row.days_from_first_infusion <= 0:
                continue
            change = change_from(round(row.lesion_pct, 4), baseline)
            response = classify_response(change.delta, change.relative_pct, settings=settings)
            labels[row.series_uid] = response.value if response is not None else ""
    return labels


def compare(truth: Sequence[TruthRow], scans_csv: Path, *, settings: ResponseSettings) -> list[ComparisonRow]:
    """Join ``truth`` with the run's ``scans.csv`` by SeriesInstanceUID (sorted by patient and time)."""
    with open(scans_csv, newline="", encoding="utf-8") as handle:
        measured = {row["series_uid"]: row for row in csv.DictReader(handle)}
    expected = true_responses(truth, settings=settings)
    rows = []
    for row in sorted(truth, key=lambda r: (r.patient_id, r.days_from_first_infusion)):
        scan = measured.get(row.series_uid, {})
        rows.append(
            ComparisonRow(
                patient_id=row.patient_id,
                course=row.course,
                days_from_first_infusion=row.days_from_first_infusion,
                phase=scan.get("phase", ""),
                status=scan.get("status", "missing"),
                true_lesion_pct=row.lesion_pct,
                measured_lesion_pct=_number(scan.get("lesion_pct")),
                true_response=expected.get(row.series_uid, ""),
                measured_response=scan.get("response", ""),
                true_lung_ml=row.lung_ml,
                measured_lung_ml=_number(scan.get("lung_ml")),
                error_code=scan.get("error_code", ""),
            )
        )
    return rows


@dataclass(frozen=True)
class Agreement:
    """How close the measurements came to the truth over the demo cohort."""

    n_measured: int
    mean_abs_difference_pp: float | None
    """Mean |measured - true| lesion %, percentage points, over the measured scans."""
    max_abs_difference_pp: float | None
    n_responses: int
    """Scans with a true response label (after the first infusion)."""
    n_responses_agree: int


def agreement(rows: Sequence[ComparisonRow]) -> Agreement:
    """Summarise the comparison: lesion % error and how many response labels match the truth."""
    differences = [abs(r.difference_pp) for r in rows if r.difference_pp is not None]
    labelled = [r for r in rows if r.true_response]
    return Agreement(
        n_measured=len(differences),
        mean_abs_difference_pp=sum(differences) / len(differences) if differences else None,
        max_abs_difference_pp=max(differences) if differences else None,
        n_responses=len(labelled),
        n_responses_agree=sum(1 for r in labelled if r.measured_response == r.true_response),
    )


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    return float(text)


def format_table(rows: Sequence[ComparisonRow]) -> str:
    """A plain-text table of the comparison (what ``lunglesion demo`` prints)."""
    header = (
        "patient",
        "course",
        "day",
        "phase",
        "lung mL true",
        "measured",
        "lesion % true",
        "measured",
        "diff (pp)",
        "response true",
        "measured",
    )
    lines = [header]
    for row in rows:
        if row.status != "ok":
            measured_pct = f"{row.status} {row.error_code}".strip()
            measured_lung, diff = "", ""
        else:
            measured_pct = _fmt(row.measured_lesion_pct, 1)
            measured_lung = _fmt(row.measured_lung_ml, 0)
            diff = _fmt(row.difference_pp, 1, signed=True)
        lines.append(
            (
                row.patient_id,
                row.course,
                f"{row.days_from_first_infusion:+.1f}",
                row.phase or "-",
                f"{row.true_lung_ml:.0f}",
                measured_lung,
                f"{row.true_lesion_pct:.1f}",
                measured_pct,
                diff,
                row.true_response or "-",
                row.measured_response or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for number, line in enumerate(lines):
        text.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if number == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text)


def _fmt(value: float | None, decimals: int, *, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
