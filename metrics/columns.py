"""The one definition of every CSV column lunglesion writes for scans, patients and the cohort.

Each :class:`Column` has its name (units in the name: ``_ml``, ``_pct``, ``_hu``, ``_mm``,
``days_``), kind, unit, number of decimals and a description. ``metrics/README.md`` holds tables
generated from these lists (:func:`markdown_table`; a test checks that they match), and the
report writer formats every cell from them, so a column cannot be added in one place and
forgotten in another.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from metrics.density import HUBand
from metrics.timepoints import ChangeMetric
from metrics.zones import ZONES


class Kind(StrEnum):
    """How a column's cells are written."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    """``true`` / ``false``."""
    DATETIME = "datetime"
    """``YYYY-MM-DDTHH:MM:SS`` (``.ffffff`` when non-zero), or ``YYYY-MM-DD`` for a date without time."""
    FLAGS = "flags"
    """Codes sorted and joined by ``;`` (empty: no flag)."""


class Source(StrEnum):
    """Who fills a column of ``scans.csv``."""

    INPUT = "input"
    """The run's per-scan record (DICOM header, status)."""
    METRIC = "metric"
    """:func:`metrics.scan.measure_scan`."""
    LINK = "link"
    """Linking to the cohort file when the tables are (re)built."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    unit: str
    description: str
    decimals: int | None = None
    source: Source = Source.INPUT

    def __post_init__(self) -> None:
        if (self.kind is Kind.FLOAT) != (self.decimals is not None):
            raise ValueError(f"column {self.name}: decimals are given for float columns and only for them")


def _f(name: str, unit: str, decimals: int, description: str, source: Source = Source.METRIC) -> Column:
    return Column(name, Kind.FLOAT, unit, description, decimals, source)


_ML, _PCT, _PP, _HU, _DAYS = 3, 4, 4, 2, 4  # decimals per unit

#: The column names the issue fixed as the interface (users' scripts depend on them): they come first.
INTERFACE_SCAN_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "study_uid",
    "series_uid",
    "acquisition_datetime",
    "status",
    "error_code",
    "lung_ml",
    "lung_right_ml",
    "lung_left_ml",
    "ggo_ml",
    "consolidation_ml",
    "lesion_ml",
    "lesion_pct",
    "ggo_pct",
    "consolidation_pct",
    "lesion_right_pct",
    "lesion_left_pct",
    "severity_score",
    "days_from_first_infusion",
    "phase",
    "delta_lesion_pct",
    "relative_change_lesion_pct",
    "response",
)

_I, _M, _L = Source.INPUT, Source.METRIC, Source.LINK


def _zone_columns() -> list[Column]:
    columns = []
    for side, level in ZONES:
        stem = f"zone_{side.value}_{level.value}"
        where = f"{level.value} third of the {side.value} lung"
        columns += [
            _f(f"{stem}_lung_ml", "mL", _ML, f"Lung volume in the {where}."),
            _f(f"{stem}_lesion_ml", "mL", _ML, f"Lesion (GGO + consolidation) volume in the {where}."),
            _f(f"{stem}_lesion_pct", "%", _PCT, f"100 x {stem}_lesion_ml / {stem}_lung_ml."),
            Column(f"{stem}_score", Kind.INT, "points", f"Severity points 0-5 of the {where}.", source=_M),
        ]
    return columns


def _change_columns() -> list[Column]:
    columns = []
    for metric in ChangeMetric:
        if metric is ChangeMetric.SEVERITY_SCORE:
            delta_unit, delta_text = "points", "severity_score - baseline severity_score"
        else:
            delta_unit, delta_text = "pp", f"{metric.value} - baseline {metric.value} (percentage points)"
        columns.append(_f(metric.delta_column, delta_unit, _PP, f"Change from baseline: {delta_text}.", _L))
        columns.append(
            _f(
                metric.relative_column,
                "%",
                _PCT,
                f"100 x {metric.delta_column} / baseline {metric.value}; empty when the baseline value is 0.",
                _L,
            )
        )
    return columns


_BAND_TEXT = {
    HUBand.EMPHYSEMA_LIKE: "HU < -950 (emphysema-like)",
    HUBand.NORMALLY_AERATED: "-950 <= HU < -750 (normally aerated)",
    HUBand.POORLY_AERATED: "-750 <= HU < -300 (poorly aerated)",
    HUBand.NON_AERATED: "-300 <= HU < +50 (non-aerated)",
    HUBand.ABOVE_50HU: "HU >= +50 (vessels with contrast, calcification; completes the partition)",
}

_SCAN_COLUMNS: list[Column] = [
    Column("patient_id", Kind.TEXT, "", "Patient: the cohort's ID when the cohort file maps it, else as recorded."),
    Column("study_uid", Kind.TEXT, "", "StudyInstanceUID."),
    Column("series_uid", Kind.TEXT, "", "SeriesInstanceUID of the measured series."),
    Column("acquisition_datetime", Kind.DATETIME, "local time", "DICOM AcquisitionDate/Time of the series."),
    Column("status", Kind.TEXT, "", "ok (measured) or failed (metric cells empty; see error_code, error_message)."),
    Column("error_code", Kind.TEXT, "", "Why the scan failed (pipeline.errors.ErrorCode); empty when ok."),
    _f("lung_ml", "mL", _ML, "Lung volume, right + left, lesions included: lung voxels x voxel_ml."),
    _f("lung_right_ml", "mL", _ML, "Right lung volume (label 1)."),
    _f("lung_left_ml", "mL", _ML, "Left lung volume (label 2)."),
    _f("ggo_ml", "mL", _ML, "Ground-glass opacity volume inside the lungs."),
    _f("consolidation_ml", "mL", _ML, "Consolidation volume inside the lungs."),
    _f("lesion_ml", "mL", _ML, "ggo_ml + consolidation_ml."),
    _f("lesion_pct", "%", _PCT, "100 x lesion_ml / lung_ml."),
    _f("ggo_pct", "%", _PCT, "100 x ggo_ml / lung_ml."),
    _f("consolidation_pct", "%", _PCT, "100 x consolidation_ml / lung_ml."),
    _f("lesion_right_pct", "%", _PCT, "100 x lesion_right_ml / lung_right_ml."),
    _f("lesion_left_pct", "%", _PCT, "100 x lesion_left_ml / lung_left_ml."),
    Column(
        "severity_score",
        Kind.INT,
        "points",
        "CT severity score: sum of the zone scores (0-30 with 6 zones).",
        source=_M,
    ),
    _f(
        "days_from_first_infusion",
        "days",
        _DAYS,
        "scan_datetime - first infusion; fractional, whole days when either has no time.",
        _L,
    ),
    Column("phase", Kind.TEXT, "", "baseline, pre, after_dose_K or follow_up (see Timepoints).", source=_L),
    _f("delta_lesion_pct", "pp", _PP, "lesion_pct - baseline lesion_pct (percentage points).", _L),
    _f(
        "relative_change_lesion_pct", "%", _PCT, "100 x delta_lesion_pct / baseline lesion_pct; empty if that is 0.", _L
    ),
    Column("response", Kind.TEXT, "", "improved, stable or worsened (scans after the first dose).", source=_L),
    # --- identity, status and time ------------------------------------------------------------
    Column("error_message", Kind.TEXT, "", "A sentence explaining the failure; empty when ok."),
    Column("patient_file_stem", Kind.TEXT, "", "File-name stem of this patient's files in patients/.", source=_L),
    Column("patient_id_source", Kind.TEXT, "", "How patient_id was found (PatientIdSource).", source=_L),
    Column("scan_id", Kind.TEXT, "", "Short stable scan identifier used in logs and file names."),
    Column("series_number", Kind.INT, "", "DICOM SeriesNumber."),
    Column("series_description", Kind.TEXT, "", "DICOM SeriesDescription."),
    Column("kernel", Kind.TEXT, "", "Reconstruction kernel (ConvolutionKernel)."),
    Column("manufacturer", Kind.TEXT, "", "Scanner manufacturer."),
    Column("series_datetime", Kind.DATETIME, "local time", "DICOM SeriesDate/Time."),
    Column("study_datetime", Kind.DATETIME, "local time", "DICOM StudyDate/Time."),
    Column(
        "scan_datetime",
        Kind.DATETIME,
        "local time",
        "Time used for linking: cohort override, else acquisition, series, study date-time.",
        source=_L,
    ),
    Column("scan_datetime_source", Kind.TEXT, "", "cohort, acquisition, series or study; empty: no date.", source=_L),
    Column("preferred_series", Kind.BOOL, "", "Chosen by the series-selection rules for its study."),
    Column("timepoint_primary", Kind.BOOL, "", "The scan that represents its time point.", source=_L),
    Column("timepoint_flags", Kind.FLAGS, "", "TimepointFlag codes.", source=_L),
    Column("doses_before_scan", Kind.INT, "", "Number of infusions the scan counts as after.", source=_L),
    _f(
        "days_from_last_infusion_before_scan",
        "days",
        _DAYS,
        "scan_datetime - last infusion before the scan; empty before the first dose.",
        _L,
    ),
    Column("baseline_series_uid", Kind.TEXT, "", "SeriesInstanceUID of the patient's baseline scan.", source=_L),
    _f("days_from_baseline", "days", _DAYS, "scan_datetime - baseline scan_datetime.", _L),
    *[c for c in _change_columns() if c.name not in ("delta_lesion_pct", "relative_change_lesion_pct")],
    Column("quality_flags", Kind.FLAGS, "", "QualityFlag codes.", source=_M),
    Column(
        "ingest_warnings",
        Kind.FLAGS,
        "",
        "Warning codes of ingestion: repairs and oddities of this scan (e.g. SPACING_RESAMPLED: slices "
        "interpolated; FILES_SKIPPED); the sentences are in index.csv.",
        source=_I,
    ),
    # --- geometry ----------------------------------------------------------------------------
    _f("slice_thickness_mm", "mm", 4, "DICOM SliceThickness (empty when absent).", _I),
    Column("size_x", Kind.INT, "voxels", "Volume size along x (columns).", source=_M),
    Column("size_y", Kind.INT, "voxels", "Volume size along y (rows).", source=_M),
    Column("size_z", Kind.INT, "voxels", "Number of slices.", source=_M),
    _f("spacing_x_mm", "mm", 4, "Voxel spacing along x."),
    _f("spacing_y_mm", "mm", 4, "Voxel spacing along y."),
    _f("spacing_z_mm", "mm", 4, "Distance between slice centres."),
    _f("voxel_ml", "mL", 6, "spacing_x_mm x spacing_y_mm x spacing_z_mm / 1000."),
    # --- more volumes and fractions ------------------------------------------------------------
    _f("ggo_right_ml", "mL", _ML, "GGO volume in the right lung."),
    _f("ggo_left_ml", "mL", _ML, "GGO volume in the left lung."),
    _f("consolidation_right_ml", "mL", _ML, "Consolidation volume in the right lung."),
    _f("consolidation_left_ml", "mL", _ML, "Consolidation volume in the left lung."),
    _f("lesion_right_ml", "mL", _ML, "ggo_right_ml + consolidation_right_ml."),
    _f("lesion_left_ml", "mL", _ML, "ggo_left_ml + consolidation_left_ml."),
    _f("lesion_outside_lung_ml", "mL", _ML, "Lesion-labelled volume outside the lung mask (not counted as lesion)."),
    _f("ggo_right_pct", "%", _PCT, "100 x ggo_right_ml / lung_right_ml."),
    _f("ggo_left_pct", "%", _PCT, "100 x ggo_left_ml / lung_left_ml."),
    _f("consolidation_right_pct", "%", _PCT, "100 x consolidation_right_ml / lung_right_ml."),
    _f("consolidation_left_pct", "%", _PCT, "100 x consolidation_left_ml / lung_left_ml."),
    Column("severity_zones_n", Kind.INT, "zones", "Zones that hold lung and were scored (6 normally).", source=_M),
    *_zone_columns(),
    # --- density -----------------------------------------------------------------------------
    _f("lung_mean_hu", "HU", _HU, "Mean HU of all lung voxels."),
    _f("lung_sd_hu", "HU", _HU, "Standard deviation (population) of lung HU."),
    _f("lesion_mean_hu", "HU", _HU, "Mean HU of lesion voxels (GGO + consolidation)."),
    _f("lesion_sd_hu", "HU", _HU, "SD of lesion HU."),
    _f("non_lesion_mean_hu", "HU", _HU, "Mean HU of lung voxels outside lesions."),
    _f("non_lesion_sd_hu", "HU", _HU, "SD of non-lesion lung HU."),
    _f("ggo_mean_hu", "HU", _HU, "Mean HU of GGO voxels."),
    _f("ggo_sd_hu", "HU", _HU, "SD of GGO HU."),
    _f("consolidation_mean_hu", "HU", _HU, "Mean HU of consolidation voxels."),
    _f("consolidation_sd_hu", "HU", _HU, "SD of consolidation HU."),
    Column("lung_p10_hu", Kind.INT, "HU", "10th percentile of lung HU (inverted CDF).", source=_M),
    Column("lung_p50_hu", Kind.INT, "HU", "Median lung HU (inverted CDF).", source=_M),
    Column("lung_p90_hu", Kind.INT, "HU", "90th percentile of lung HU (inverted CDF).", source=_M),
    *[_f(f"lung_{band.value}_pct", "%", _PCT, f"% of lung voxels with {_BAND_TEXT[band]}.") for band in HUBand],
    Column("air_hu", Kind.INT, "HU", "Air peak outside the lungs (calibration check); empty: not found.", source=_M),
    Column(
        "soft_tissue_hu",
        Kind.INT,
        "HU",
        "Soft-tissue peak outside the lungs (calibration check); empty: not found.",
        source=_M,
    ),
    # --- provenance --------------------------------------------------------------------------
    Column("model_id", Kind.TEXT, "", "Segmenter identifier."),
    Column("model_sha256", Kind.TEXT, "", "SHA-256 of the segmentation weights."),
    Column("pipeline_version", Kind.TEXT, "", "lunglesion version that measured the scan."),
]

SCAN_COLUMNS: tuple[Column, ...] = tuple(_SCAN_COLUMNS)
"""Columns of ``scans.csv`` and ``patients/<patient>.csv``, in order."""

SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("row_type", Kind.TEXT, "", "patient (one row per patient) or cohort (the last row)."),
    Column("patient_id", Kind.TEXT, "", "Patient (empty on the cohort row)."),
    Column("patient_file_stem", Kind.TEXT, "", "File-name stem of the patient's files in patients/."),
    Column("patient_flags", Kind.FLAGS, "", "PatientFlag codes."),
    Column("n_scans", Kind.INT, "", "Scan rows of the patient (all statuses, duplicates included)."),
    Column("n_scans_failed", Kind.INT, "", "Rows with status failed."),
    Column("n_timepoints", Kind.INT, "", "Dated time points (duplicates counted once)."),
    Column("n_infusions", Kind.INT, "", "Infusions in the cohort file."),
    Column("n_infusions_without_scan", Kind.INT, "", "Infusions with no measured scan before the next one."),
    Column("first_infusion_datetime", Kind.DATETIME, "local time", "First infusion."),
    Column("baseline_datetime", Kind.DATETIME, "local time", "scan_datetime of the baseline scan."),
    Column("baseline_series_uid", Kind.TEXT, "", "SeriesInstanceUID of the baseline scan."),
    _f("baseline_lesion_pct", "%", _PCT, "lesion_pct at baseline.", _L),
    Column("baseline_severity_score", Kind.INT, "points", "severity_score at baseline."),
    Column(
        "last_follow_up_datetime", Kind.DATETIME, "local time", "Latest measured primary scan after the first dose."
    ),
    Column("last_follow_up_phase", Kind.TEXT, "", "Its phase (follow_up, or after_dose_K without a later scan)."),
    _f("last_follow_up_days_from_first_infusion", "days", _DAYS, "Its days_from_first_infusion.", _L),
    _f("last_follow_up_lesion_pct", "%", _PCT, "Its lesion_pct.", _L),
    _f("last_follow_up_delta_lesion_pct", "pp", _PP, "Its delta_lesion_pct.", _L),
    _f("last_follow_up_relative_change_lesion_pct", "%", _PCT, "Its relative_change_lesion_pct.", _L),
    Column("response_at_last_follow_up", Kind.TEXT, "", "Its response."),
    _f(
        "best_delta_lesion_pct",
        "pp",
        _PP,
        "Most negative delta_lesion_pct over measured primary scans after the first dose.",
        _L,
    ),
    _f("best_delta_days_from_first_infusion", "days", _DAYS, "days_from_first_infusion of that scan.", _L),
    _f(
        "days_to_first_improvement",
        "days",
        _DAYS,
        "days_from_first_infusion of the first scan whose response is improved; empty: never improved.",
        _L,
    ),
    Column("cohort_n_patients", Kind.INT, "", "Cohort row: patients in the table."),
    Column("cohort_n_paired", Kind.INT, "", "Cohort row: patients with baseline and last follow-up lesion %."),
    Column("cohort_n_improved", Kind.INT, "", "Cohort row: paired patients improved at last follow-up."),
    Column("cohort_n_stable", Kind.INT, "", "Cohort row: paired patients stable at last follow-up."),
    Column("cohort_n_worsened", Kind.INT, "", "Cohort row: paired patients worsened at last follow-up."),
    _f("cohort_median_baseline_lesion_pct", "%", _PCT, "Cohort row: median baseline lesion_pct of the pairs.", _L),
    _f(
        "cohort_median_last_follow_up_lesion_pct",
        "%",
        _PCT,
        "Cohort row: median last follow-up lesion_pct of the pairs.",
        _L,
    ),
    _f("cohort_median_delta_lesion_pct", "pp", _PP, "Cohort row: median of last follow-up delta_lesion_pct.", _L),
    Column("wilcoxon_n_nonzero", Kind.INT, "", "Cohort row: pairs with a non-zero difference (used by the test)."),
    _f("wilcoxon_statistic", "", 2, "Cohort row: signed-rank statistic (smaller rank sum), scipy.stats.wilcoxon.", _L),
    _f("wilcoxon_p_value", "", 6, "Cohort row: two-sided p of baseline vs last follow-up lesion_pct.", _L),
    Column("wilcoxon_method", Kind.TEXT, "", "Cohort row: exact, or asymptotic (ties or more than 50 pairs)."),
    Column("wilcoxon_note", Kind.TEXT, "", "Cohort row: ok, no_pairs, all_differences_zero or too_few_pairs."),
)
"""Columns of ``cohort_summary.csv``."""

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", Kind.TEXT, "", "Patient."),
    Column("patient_file_stem", Kind.TEXT, "", "File-name stem of the patient's files."),
    Column("event", Kind.TEXT, "", "infusion, admission, discharge or any other event of the cohort file."),
    Column("dose", Kind.INT, "", "Dose number K of an infusion (1 = first, in time order)."),
    Column("datetime", Kind.DATETIME, "local time", "When the event happened, as in the cohort file."),
    _f("days_from_first_infusion", "days", _DAYS, "Event time - first infusion.", _L),
    Column("n_scans_after_dose", Kind.INT, "", "Infusions: measured primary scans before the next infusion."),
    Column("event_flags", Kind.FLAGS, "", "EventFlag codes (NO_SCAN_AFTER_DOSE: an infusion without a scan)."),
    Column("cohort_line", Kind.INT, "", "Line of the event in the cohort file."),
)
"""Columns of ``patients/<patient>_events.csv``."""


def _check_unique(columns: tuple[Column, ...], what: str) -> None:
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"{what}: duplicate column names {duplicates}")


_check_unique(SCAN_COLUMNS, "SCAN_COLUMNS")
_check_unique(SUMMARY_COLUMNS, "SUMMARY_COLUMNS")
_check_unique(EVENT_COLUMNS, "EVENT_COLUMNS")


def names(columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(c.name for c in columns)


def by_name(columns: tuple[Column, ...]) -> dict[str, Column]:
    return {c.name: c for c in columns}


def scan_columns_from(source: Source) -> tuple[Column, ...]:
    return tuple(c for c in SCAN_COLUMNS if c.source is source)


def markdown_table(columns: tuple[Column, ...]) -> str:
    """A Markdown table (column, unit, kind, description) in schema order."""
    lines = ["| column | unit | kind | description |", "|---|---|---|---|"]
    for column in columns:
        unit = column.unit or "-"
        kind = column.kind.value if column.decimals is None else f"{column.kind.value} ({column.decimals} dp)"
        description = column.description.replace("|", "\\|")
        lines.append(f"| `{column.name}` | {unit} | {kind} | {description} |")
    return "\n".join(lines) + "\n"


#: Marker pairs around the generated tables in ``metrics/README.md``.
README_TABLES: dict[str, tuple[Column, ...]] = {
    "scans": SCAN_COLUMNS,
    "cohort_summary": SUMMARY_COLUMNS,
    "events": EVENT_COLUMNS,
}


def readme_block(name: str) -> str:
    """The generated README block for table ``name``, markers included."""
    return f"<!-- columns:{name}:start -->\n{markdown_table(README_TABLES[name])}<!-- columns:{name}:end -->"


def update_readme(text: str) -> str:
    """``text`` with every generated column block replaced by the current schema."""
    import re

    for name in README_TABLES:
        pattern = re.compile(rf"<!-- columns:{name}:start -->.*?<!-- columns:{name}:end -->", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no block for table {name!r}")
        text = pattern.sub(lambda _m, n=name: readme_block(n), text)
    return text


if __name__ == "__main__":  # python -m metrics.columns README.md: regenerate the column tables in place
    import sys
    from pathlib import Path

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("README.md")
    target.write_text(update_readme(target.read_text(encoding="utf-8")), encoding="utf-8")
