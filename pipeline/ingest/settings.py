"""Settings of the ingestion stages: indexing, series selection, geometry checks, HU mapping.

Defaults live only in ``configs/default.yaml`` (sections ``index``, ``selection``, ``geometry``
and ``hu``), each with a comment saying what it does and why the default was chosen.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from pipeline.settings_base import SettingsModel


class KernelPreference(StrEnum):
    """Which reconstruction kernel wins when a study holds several otherwise equal series."""

    SHARP = "sharp"
    SOFT = "soft"
    ANY = "any"


class RepairPolicy(StrEnum):
    """What to do with a repairable geometry problem."""

    REJECT = "reject"
    RESAMPLE = "resample"


class SeriesPerStudy(StrEnum):
    """How many series to analyse per study."""

    ONE = "one"
    ALL = "all"


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return patterns


class IndexSettings(SettingsModel):
    """Finding files and reading headers (and the threads that decode pixels)."""

    workers: int = Field(ge=1, le=64)
    """Threads reading DICOM headers."""
    pixel_workers: int = Field(ge=1, le=64)
    """Threads reading and decoding the slices of one series in :func:`~pipeline.ingest.load_scan`."""
    volume_suffixes: list[str] = Field(min_length=1)
    follow_symlinks: bool
    skip_hidden: bool
    """Ignore files and folders whose name starts with a dot (``.DS_Store``, ``.git``)."""

    @field_validator("volume_suffixes")
    @classmethod
    def _suffixes_dotted(cls, suffixes: list[str]) -> list[str]:
        for suffix in suffixes:
            if not suffix.startswith(".") or len(suffix) < 2:
                raise ValueError(f"volume suffixes start with a dot, like '.nii.gz' (got {suffix!r})")
        return [suffix.lower() for suffix in suffixes]


class SelectionSettings(SettingsModel):
    """Rules that decide which series of a study is analysed."""

    modalities: list[str] = Field(min_length=1)
    require_original: bool
    """ImageType value 1 must be ORIGINAL (reformats, MIPs and other derived images are DERIVED)."""
    accept_missing_image_type: bool
    """Series without an ImageType element (old or re-written files) pass the ImageType rules."""
    localizer_image_type_values: list[str]
    derived_image_type_values: list[str]
    localizer_description_patterns: list[str]
    report_description_patterns: list[str]
    reformat_description_patterns: list[str]
    min_slices: int = Field(ge=1)
    min_z_extent_mm: float = Field(ge=0)
    max_axial_deviation_deg: float = Field(gt=0, le=90)
    kernel_preference: KernelPreference
    sharp_kernel_patterns: list[str]
    soft_kernel_patterns: list[str]
    thickness_tie_mm: float = Field(ge=0)
    series_per_study: SeriesPerStudy

    @field_validator(
        "localizer_description_patterns",
        "report_description_patterns",
        "reformat_description_patterns",
        "sharp_kernel_patterns",
        "soft_kernel_patterns",
    )
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        return _check_patterns(patterns)

    @field_validator("modalities", "localizer_image_type_values", "derived_image_type_values")
    @classmethod
    def _upper(cls, values: list[str]) -> list[str]:
        return [value.strip().upper() for value in values]


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
    pixel_spacing_tolerance_mm: float = Field(gt=0)
    orientation_tolerance: float = Field(gt=0, lt=0.5)
    """Slices whose orientation cosines differ by more than this belong to different stacks."""
    split_mixed_series: bool
    """Split a series mixing orientations or image sizes into one candidate per stack (else reject it)."""

    @model_validator(mode="after")
    def _tilt_range(self) -> GeometrySettings:
        if self.tilt_tolerance_deg >= self.max_tilt_deg:
            raise ValueError(
                f"tilt_tolerance_deg ({self.tilt_tolerance_deg}) must be smaller than "
                f"max_tilt_deg ({self.max_tilt_deg})"
            )
        return self


class HUSettings(SettingsModel):
    """Mapping stored values to Hounsfield units."""

    padding_hu: int = Field(ge=-32768, le=32767)
    out_of_fov_below_hu: int = Field(ge=-32768, le=32767)
    clip_max_hu: int = Field(ge=-32768, le=32767)
    volume_file_air_check_hu: int = Field(ge=-32768, le=32767)
    """A volume file whose lowest value is above this holds no air: not CT in HU (mask, label map)."""

    @model_validator(mode="after")
    def _ordered(self) -> HUSettings:
        if self.out_of_fov_below_hu >= self.clip_max_hu:
            raise ValueError(
                f"out_of_fov_below_hu ({self.out_of_fov_below_hu}) must be below clip_max_hu ({self.clip_max_hu})"
            )
        return self
