"""Convenience wrapper: measure a SimpleITK CT and its segmentation (no copies of the voxels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metrics.scan import ScanMetrics, measure_scan
from metrics.settings import MetricsSettings
from metrics.zones import superior_sign_from_direction

if TYPE_CHECKING:
    import SimpleITK as sitk

    from segmentation.result import LungSegmentation


def measure_image(
    ct: sitk.Image,
    segmentation: LungSegmentation,
    *,
    slice_thickness_mm: float | None,
    settings: MetricsSettings,
    padding_hu: int | None = None,
) -> ScanMetrics:
    """:func:`~metrics.scan.measure_scan` on SimpleITK images sharing one grid.

    The z-axis direction comes from the CT's direction matrix, so slices stored head-first or
    feet-first give the same zones.

    Raises
    ------
    ValueError
        If the masks are not on the CT's grid (size, spacing, origin or direction differ beyond
        float32 header precision, :func:`segmentation.grid.grid_mismatch`), or the slices are not axial.
    """
    import SimpleITK as sitk

    from segmentation.grid import format_values, grid_mismatch

    for name, mask in (("lungs", segmentation.lungs), ("lesions", segmentation.lesions)):
        mismatch = grid_mismatch(mask, ct)
        if mismatch is not None:
            what, got, expected = mismatch
            raise ValueError(
                f"{name} mask {what} {format_values(got)} differs from the CT {what} {format_values(expected)}: "
                "the masks must lie on the CT's voxel grid (same size, spacing, origin and direction)"
            )
    return measure_scan(
        hu=sitk.GetArrayViewFromImage(ct),
        lungs=sitk.GetArrayViewFromImage(segmentation.lungs),
        lesions=sitk.GetArrayViewFromImage(segmentation.lesions),
        spacing_zyx=tuple(reversed(ct.GetSpacing())),
        superior_sign=superior_sign_from_direction(ct.GetDirection()),
        slice_thickness_mm=slice_thickness_mm,
        settings=settings,
        padding_hu=padding_hu,
    )
