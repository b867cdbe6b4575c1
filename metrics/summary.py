"""One summary row per patient and the cohort row of ``cohort_summary.csv`` (pure computation).

Rows are mappings from column names (:mod:`metrics.columns`) to typed values, as produced by
the linking step of ``pipeline.reports``.

* *last follow-up*: the latest measured primary scan after the first dose (``phase`` is
  ``after_dose_K`` or ``follow_up``);
* *best change*: the most negative ``delta_lesion_pct`` among measured primary scans after the
  first dose (the largest improvement, or the smallest increase when all increased);
* *time to first improvement*: ``days_from_first_infusion`` of the earliest scan after the
  first dose whose ``response`` is ``improved``;
* cohort row: medians over patients with both a baseline and a last follow-up, and a paired
  Wilcoxon signed-rank test of their baseline vs last follow-up ``lesion_pct``
  (:func:`wilcoxon_baseline_vs_last`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from metrics.timepoints import NOISE_DECIMALS, PatientTimeline
from metrics.timestamps import EventTime
from metrics.vocabulary import PatientFlag, Response, RowType, ScanStatus, WilcoxonNote

_EXACT_MAX_N = 50  # scipy's exact null distribution is used up to 50 pairs without ties


@dataclass(frozen=True)
class WilcoxonResult:
    n_pairs: int
    n_nonzero: int
    statistic: float | None
    p_value: float | None
    method: str | None
    note: WilcoxonNote


def paired_differences(baseline: Sequence[float], last: Sequence[float]) -> np.ndarray:
    """``last - baseline`` per pair, rounded to 1e-9 like :func:`metrics.timepoints.change_from`.

    The rounding drops binary floating-point noise, so that differences printed alike are equal
    (``5.0001 - 1.1234`` and ``4.8788 - 1.0021`` are one tie) and a printed 0 is a zero difference.
    """
    if len(baseline) != len(last):
        raise ValueError("baseline and last follow-up values must pair up")
    raw = np.asarray(last, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return np.round(raw, NOISE_DECIMALS) + 0.0


def wilcoxon_baseline_vs_last(baseline: Sequence[float], last: Sequence[float], *, min_pairs: int) -> WilcoxonResult:
    """Two-sided paired Wilcoxon signed-rank test of ``last`` vs ``baseline``.

    Zero differences are dropped (Wilcoxon's original rule, scipy ``zero_method="wilcox"``).
    The exact null distribution is used for at most 50 non-zero pairs without tied absolute
    differences, the normal approximation (with tie correction) otherwise. The test is not run
    (statistic and p empty) when there are no pairs, all differences are zero, or fewer than
    ``min_pairs`` differences are non-zero. Differences are those of :func:`paired_differences`
    (rounded to 1e-9), for the zero and tie rules and for the test itself.
    """
    differences = paired_differences(baseline, last)
    n_pairs = int(differences.size)
    nonzero = differences[differences != 0]
    n_nonzero = int(nonzero.size)
    if n_pairs == 0:
        return WilcoxonResult(0, 0, None, None, None, WilcoxonNote.NO_PAIRS)
    if n_nonzero == 0:
        return WilcoxonResult(n_pairs, 0, None, None, None, WilcoxonNote.ALL_DIFFERENCES_ZERO)
    if n_nonzero < min_pairs:
        return WilcoxonResult(n_pairs, n_nonzero, None, None, None, WilcoxonNote.TOO_FEW_PAIRS)
    from scipy.stats import wilcoxon

    ties = np.unique(np.abs(nonzero)).size < n_nonzero
    method = "exact" if n_nonzero <= _EXACT_MAX_N and not ties else "asymptotic"
    result = wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method=method)
    return WilcoxonResult(n_pairs, n_nonzero, float(result.statistic), float(result.pvalue), method, WilcoxonNote.OK)


def _measured_primary(row: Mapping[str, object]) -> bool:
    return row.get("status") == ScanStatus.OK.value and bool(row.get("timepoint_primary"))


def _after_first_dose(row: Mapping[str, object]) -> bool:
    doses = row.get("doses_before_scan")
    return isinstance(doses, int) and doses >= 1


def summarize_patient(
    *,
    patient_id: str,
    file_stem: str,
    rows: Sequence[Mapping[str, object]],
    timeline: PatientTimeline,
    infusions: Sequence[EventTime] | None,
    in_cohort: bool | None,
) -> dict[str, object]:
    """The ``cohort_summary.csv`` row of one patient.

    Parameters
    ----------
    rows
        The patient's linked scan rows in time order (may be empty).
    timeline
        The linking result of the same scans (:func:`metrics.timepoints.link_patient`).
    infusions
        Infusion times from the cohort file (``None``: not in the cohort / no cohort).
    in_cohort
        ``True``/``False`` when a cohort file was given, ``None`` without one.
    """
    flags: set[PatientFlag] = set(timeline.flags)
    if in_cohort is False:
        flags.add(PatientFlag.NOT_IN_COHORT)

    baseline = next((r for r in rows if r.get("phase") == "baseline" and _measured_primary(r)), None)
    post = [r for r in rows if _measured_primary(r) and _after_first_dose(r)]
    last = post[-1] if post else None
    with_delta = [r for r in post if r.get("delta_lesion_pct") is not None]
    best = min(with_delta, key=lambda r: r["delta_lesion_pct"]) if with_delta else None  # type: ignore[arg-type,return-value]
    first_improved = next((r for r in post if r.get("response") == Response.IMPROVED.value), None)
    n_timepoints = sum(1 for r in rows if r.get("scan_datetime") is not None and r.get("timepoint_primary"))

    def get(row: Mapping[str, object] | None, column: str) -> object:
        return None if row is None else row.get(column)

    return {
        "row_type": RowType.PATIENT.value,
        "patient_id": patient_id,
        "patient_file_stem": file_stem,
        "patient_flags": tuple(sorted(flag.value for flag in flags)),
        "n_scans": len(rows),
        "n_scans_failed": sum(1 for r in rows if r.get("status") != ScanStatus.OK.value),
        "n_timepoints": n_timepoints,
        "n_infusions": len(infusions) if infusions is not None else None,
        "n_infusions_without_scan": sum(1 for d in timeline.doses if d.flags) if infusions is not None else None,
        "first_infusion_datetime": min(infusions) if infusions else None,
        "baseline_datetime": get(baseline, "scan_datetime"),
        "baseline_series_uid": get(baseline, "series_uid"),
        "baseline_lesion_pct": get(baseline, "lesion_pct"),
        "baseline_severity_score": get(baseline, "severity_score"),
        "last_follow_up_datetime": get(last, "scan_datetime"),
        "last_follow_up_phase": get(last, "phase"),
        "last_follow_up_days_from_first_infusion": get(last, "days_from_first_infusion"),
        "last_follow_up_lesion_pct": get(last, "lesion_pct"),
        "last_follow_up_delta_lesion_pct": get(last, "delta_lesion_pct"),
        "last_follow_up_relative_change_lesion_pct": get(last, "relative_change_lesion_pct"),
        "response_at_last_follow_up": get(last, "response"),
        "best_delta_lesion_pct": get(best, "delta_lesion_pct"),
        "best_delta_days_from_first_infusion": get(best, "days_from_first_infusion"),
        "days_to_first_improvement": get(first_improved, "days_from_first_infusion"),
    }


def summarize_cohort(patient_rows: Sequence[Mapping[str, object]], *, min_pairs: int) -> dict[str, object]:
    """The cohort row: pair counts, medians, responses and the Wilcoxon test."""
    pairs = [
        (r["baseline_lesion_pct"], r["last_follow_up_lesion_pct"], r.get("response_at_last_follow_up"))
        for r in patient_rows
        if r.get("baseline_lesion_pct") is not None and r.get("last_follow_up_lesion_pct") is not None
    ]
    baseline = [float(b) for b, _, _ in pairs]  # type: ignore[arg-type]
    last = [float(f) for _, f, _ in pairs]  # type: ignore[arg-type]
    deltas = [float(d) for d in paired_differences(baseline, last)]
    test = wilcoxon_baseline_vs_last(baseline, last, min_pairs=min_pairs)
    responses = [resp for _, _, resp in pairs]
    return {
        "row_type": RowType.COHORT.value,
        "cohort_n_patients": len(patient_rows),
        "cohort_n_paired": len(pairs),
        "cohort_n_improved": responses.count(Response.IMPROVED.value),
        "cohort_n_stable": responses.count(Response.STABLE.value),
        "cohort_n_worsened": responses.count(Response.WORSENED.value),
        "cohort_median_baseline_lesion_pct": statistics.median(baseline) if baseline else None,
        "cohort_median_last_follow_up_lesion_pct": statistics.median(last) if last else None,
        "cohort_median_delta_lesion_pct": statistics.median(deltas) if deltas else None,
        "wilcoxon_n_nonzero": test.n_nonzero,
        "wilcoxon_statistic": test.statistic,
        "wilcoxon_p_value": test.p_value,
        "wilcoxon_method": test.method,
        "wilcoxon_note": test.note.value,
    }
