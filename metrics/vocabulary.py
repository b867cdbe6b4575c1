"""The words that appear in CSV cells: statuses, phases, responses, flags, sources.

They are stable strings that users' scripts filter on: add members, never rename.
"""

from __future__ import annotations

from enum import StrEnum


class ScanStatus(StrEnum):
    """Whether a scan was measured (``ok``) or failed somewhere in the pipeline."""

    OK = "ok"
    FAILED = "failed"


class PhaseKind(StrEnum):
    """Where a scan lies relative to the infusions (see :func:`phase_label`)."""

    BASELINE = "baseline"
    """The last successfully measured scan before the first infusion, within the baseline window."""
    PRE = "pre"
    """Any other scan before the first infusion."""
    AFTER_DOSE = "after_dose"
    """After dose K and not after dose K+1 (K < number of doses): written ``after_dose_K``."""
    FOLLOW_UP = "follow_up"
    """After the last dose."""


def phase_label(kind: PhaseKind, dose: int | None = None) -> str:
    """The ``phase`` cell: ``baseline``, ``pre``, ``after_dose_<K>`` or ``follow_up``."""
    if kind is PhaseKind.AFTER_DOSE:
        if dose is None or dose < 1:
            raise ValueError(f"after_dose needs a dose number >= 1, got {dose!r}")
        return f"{kind.value}_{dose}"
    return kind.value


class Response(StrEnum):
    """Change of lesion % from baseline, by the thresholds in ``timepoints.response``."""

    IMPROVED = "improved"
    STABLE = "stable"
    WORSENED = "worsened"


class TimepointFlag(StrEnum):
    """Why a scan's timepoint columns are empty or need care (``timepoint_flags`` column)."""

    NO_SCAN_DATE = "NO_SCAN_DATE"
    """Neither the DICOM header nor the cohort file gives the scan a date: it cannot be placed in time."""
    PATIENT_NOT_IN_COHORT = "PATIENT_NOT_IN_COHORT"
    """A cohort file was given but does not list this patient."""
    NO_INFUSIONS = "NO_INFUSIONS"
    """The cohort file lists the patient but no infusion: phases and days from infusion are empty."""
    NO_BASELINE = "NO_BASELINE"
    """No successfully measured scan before the first infusion within the baseline window."""
    DUPLICATE_TIMEPOINT = "DUPLICATE_TIMEPOINT"
    """Another series of this time point is primary (see ``timepoint_primary``); this one is kept for reference."""
    SAME_DAY_AS_INFUSION = "SAME_DAY_AS_INFUSION"
    """Scan and an infusion share a calendar day and one has no time: ordered by ``timepoints.same_day_date_only``."""


class PatientFlag(StrEnum):
    """Patient-level flags of ``cohort_summary.csv``."""

    NOT_IN_COHORT = "NOT_IN_COHORT"
    NO_SCANS = "NO_SCANS"
    NO_INFUSIONS = "NO_INFUSIONS"
    NO_BASELINE = "NO_BASELINE"
    NO_FOLLOW_UP = "NO_FOLLOW_UP"
    INFUSION_WITHOUT_SCAN = "INFUSION_WITHOUT_SCAN"
    SCANS_WITHOUT_DATE = "SCANS_WITHOUT_DATE"
    FAILED_SCANS = "FAILED_SCANS"
    DUPLICATE_TIMEPOINTS = "DUPLICATE_TIMEPOINTS"


class EventFlag(StrEnum):
    """Flags of the per-patient event table."""

    NO_SCAN_AFTER_DOSE = "NO_SCAN_AFTER_DOSE"
    """No successfully measured scan between this infusion and the next one (or after the last one)."""


class DatetimeSource(StrEnum):
    """Where a scan's date-time (``scan_datetime``) came from."""

    COHORT = "cohort"
    ACQUISITION = "acquisition"
    SERIES = "series"
    STUDY = "study"


class PatientIdSource(StrEnum):
    """How a scan's ``patient_id`` was found."""

    SERIES_OVERRIDE = "series_override"
    """A ``scan`` row of the cohort file names this SeriesInstanceUID."""
    STUDY_OVERRIDE = "study_override"
    """A ``scan`` row of the cohort file names this StudyInstanceUID."""
    DICOM_ID_MAP = "dicom_id_map"
    """The cohort file's ``dicom_patient_id`` column maps the DICOM PatientID to this ID."""
    AS_GIVEN = "as_given"
    """The patient ID of the scan record, unchanged."""


class RowType(StrEnum):
    """Row kinds of ``cohort_summary.csv``."""

    PATIENT = "patient"
    COHORT = "cohort"


class WilcoxonNote(StrEnum):
    """Outcome of the cohort's Wilcoxon signed-rank test (``wilcoxon_note``)."""

    OK = "ok"
    NO_PAIRS = "no_pairs"
    ALL_DIFFERENCES_ZERO = "all_differences_zero"
    TOO_FEW_PAIRS = "too_few_pairs"
