"""Settings of the ingestion stages: indexing, series selection, geometry checks, HU mapping."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator

from pipeline.settings_base import SettingsModel


class KernelPreference(str, Enum):
    """Which reconstruction kernel wins when a study holds several otherwise equal series."""

    SHARP = "sharp"
    SOFT = "soft"
    ANY = "any"


class RepairPolicy(str, Enum):
    """What to do with a repairable geometry problem."""

    REJECT = "reject"
    RESAMPLE = "resample"


class SeriesPerStudy(str, Enum):
    """How many series to analyse per study."""

    ONE = "one"
    ALL = "all"


class IndexSettings(SettingsModel):
    """Finding and reading headers."""

    workers: int = Field(ge=1, le=64)
    volume_suffixes: list[str]
    follow_symlinks: bool


class SelectionSettings(SettingsModel):
    """Rules that decide which series of a study is analysed."""

    modalities: list[str] = Field(min_length=1)
    require_original_primary: bool
    reject_image_type_values: list[str]
    reject_description_patterns: list[str]
    min_slices: int = Field(ge=1)
    min_z_extent_mm: float = Field(ge=0)
    max_axial_deviation_deg: float = Field(gt=0, le=90)
    kernel_preference: KernelPreference
    sharp_kernel_patterns: list[str]
    soft_kernel_patterns: list[str]
    thickness_tie_mm: float = Field(ge=0)
    series_per_study: SeriesPerStudy

    @field_validator("reject_description_patterns", "sharp_kernel_patterns", "soft_kernel_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        import re

        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return patterns


class GeometrySettings(SettingsModel):
    """Tolerances and repair policies for slice geometry."""

    spacing_tolerance_mm: float = Field(gt=0)
    spacing_tolerance_fraction: float = Field(gt=0, lt=1)
    on_irregular_spacing: RepairPolicy
    max_gap_slices: int = Field(ge=1)
    on_gantry_tilt: RepairPolicy
    tilt_tolerance_deg: float = Field(ge=0)
    max_tilt_deg: float = Field(gt=0, lt=90)
    orthonormal_tolerance: float = Field(gt=0, lt=0.5)
    position_tolerance_mm: float = Field(gt=0)


class HUSettings(SettingsModel):
    """Mapping stored values to Hounsfield units."""

    padding_hu: int = Field(ge=-32768, le=32767)
    out_of_fov_below_hu: int
    clip_max_hu: int = Field(le=32767)
