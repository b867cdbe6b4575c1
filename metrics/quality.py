"""Per-scan quality flags: reasons to look at a scan before trusting its numbers.

A flag never stops a scan from being measured; the flags of a scan are listed, sorted and
separated by ``;``, in the ``quality_flags`` column of ``scans.csv``.
"""

from __future__ import annotations

from enum import StrEnum


class QualityFlag(StrEnum):
    """Machine-readable quality flags (stable strings: add members, never rename)."""

    NO_LUNG = "NO_LUNG"
    """The lung mask is empty: no volume, percentage or density can be computed."""
    RIGHT_LUNG_MISSING = "RIGHT_LUNG_MISSING"
    """No voxel carries the right-lung label (the other lung was measured)."""
    LEFT_LUNG_MISSING = "LEFT_LUNG_MISSING"
    """No voxel carries the left-lung label (the other lung was measured)."""
    LUNG_VOLUME_IMPLAUSIBLE = "LUNG_VOLUME_IMPLAUSIBLE"
    """Total lung volume outside ``metrics.quality.lung_ml_min .. lung_ml_max``."""
    LUNG_CUT_CRANIOCAUDAL = "LUNG_CUT_CRANIOCAUDAL"
    """The lung mask touches the first or last slice: apex or base may lie outside the scan."""
    LUNG_CUT_IN_PLANE = "LUNG_CUT_IN_PLANE"
    """The lung mask touches the first/last row or column: the field of view may cut the lung."""
    LUNG_EXTENT_GAP = "LUNG_EXTENT_GAP"
    """At least 5 % of the slices of a lung's cranio-caudal extent hold none of it (separate
    pieces or stray voxels along z, e.g. in a mask made elsewhere): its zones are thirds of the
    whole extent, gap included, so its zone values are not those of the main lung."""
    LESION_OUTSIDE_LUNG = "LESION_OUTSIDE_LUNG"
    """Lesion voxels outside the lung mask (not counted in lesion volumes and percentages)."""
    THICK_SLICES = "THICK_SLICES"
    """Slice thickness above ``metrics.quality.max_slice_thickness_mm``."""
    HU_AIR_OFF = "HU_AIR_OFF"
    """Air outside the lungs does not peak near ``metrics.calibration.air_expected_hu``."""
    HU_SOFT_TISSUE_OFF = "HU_SOFT_TISSUE_OFF"
    """Soft tissue does not peak near ``metrics.calibration.soft_tissue_expected_hu``."""


def format_flags(flags: object) -> str:
    """Flags (enum members or strings) as one sorted, ``;``-separated, duplicate-free string."""
    if flags is None:
        return ""
    if isinstance(flags, str):
        items = [part for part in flags.split(";")]
    else:
        items = [getattr(flag, "value", flag) for flag in flags]  # type: ignore[union-attr]
    return ";".join(sorted({str(item).strip() for item in items if str(item).strip()}))
