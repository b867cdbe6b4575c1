"""Settings of the measurement and timepoint-linking stages (owned by the metrics package).

Defaults live only in ``configs/default.yaml`` (sections ``metrics:`` and ``timepoints:``);
``metrics/README.md`` explains each value and why it was chosen.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from pipeline.settings_base import SettingsModel


class QualitySettings(SettingsModel):
    """Limits of the per-scan quality flags."""

    lung_ml_min: float = Field(ge=0)
    """Total lung volume below this (mL) raises ``LUNG_VOLUME_IMPLAUSIBLE``."""
    lung_ml_max: float = Field(gt=0)
    """Total lung volume above this (mL) raises ``LUNG_VOLUME_IMPLAUSIBLE``."""
    max_slice_thickness_mm: float = Field(gt=0)
    """Slices thicker than this raise ``THICK_SLICES``."""

    @model_validator(mode="after")
    def _range_ordered(self) -> QualitySettings:
        if self.lung_ml_min >= self.lung_ml_max:
            raise ValueError(f"lung_ml_min ({self.lung_ml_min}) must be smaller than lung_ml_max ({self.lung_ml_max})")
        return self


class CalibrationSettings(SettingsModel):
    """How the HU calibration check samples air and soft tissue outside the lungs."""

    air_expected_hu: int = Field(ge=-1100, le=-900)
    air_tolerance_hu: int = Field(gt=0, le=500)
    air_search_half_width_hu: int = Field(gt=0, le=1000)
    soft_tissue_expected_hu: int = Field(ge=-100, le=200)
    soft_tissue_tolerance_hu: int = Field(gt=0, le=500)
    soft_tissue_search_half_width_hu: int = Field(gt=0, le=500)
    min_voxels: int = Field(ge=1)
    """Fewer sampled voxels than this in a search window: the reference tissue was not found."""
    sample_stride: int = Field(ge=1, le=16)
    """Every n-th slice (counted from the feet) is cut into n x n blocks; lung-free blocks give their mean HU."""
    smoothing_hu: int = Field(ge=1, le=101)
    """Width (HU) of the moving average applied to the histogram before taking its mode; odd."""

    @model_validator(mode="after")
    def _windows_valid(self) -> CalibrationSettings:
        if self.smoothing_hu % 2 == 0:
            raise ValueError(f"smoothing_hu must be odd (a centred window), got {self.smoothing_hu}")
        if self.air_tolerance_hu > self.air_search_half_width_hu:
            raise ValueError("air_tolerance_hu must not exceed air_search_half_width_hu")
        if self.soft_tissue_tolerance_hu > self.soft_tissue_search_half_width_hu:
            raise ValueError("soft_tissue_tolerance_hu must not exceed soft_tissue_search_half_width_hu")
        return self


class MetricsSettings(SettingsModel):
    """Per-scan measurement parameters and quality-flag limits."""

    quality: QualitySettings
    calibration: CalibrationSettings


class SameDayRule(StrEnum):
    """Where a scan goes when it falls on the calendar day of a date-only infusion."""

    BEFORE = "before"
    AFTER = "after"


class ResponseSettings(SettingsModel):
    """Thresholds of the improved / stable / worsened label (both must be exceeded)."""

    absolute_threshold_pp: float = Field(gt=0, le=100)
    """Minimum change of lesion % from baseline, in percentage points."""
    relative_threshold_pct: float = Field(gt=0)
    """Minimum change of lesion % relative to the baseline value, in %."""


class TimepointSettings(SettingsModel):
    """How scans are linked to treatment events and how change is labelled."""

    baseline_window_days: float | None = Field(gt=0)
    """The baseline scan must lie at most this many days before the first infusion (null: no limit)."""
    same_day_date_only: SameDayRule
    duplicate_window_minutes: float = Field(ge=0)
    """Dated scans of one patient at most this far apart (and between the same doses) are one time point."""
    response: ResponseSettings
    cohort_test_min_pairs: int = Field(ge=1)
    """The Wilcoxon test is reported only with at least this many non-zero baseline/follow-up pairs."""
