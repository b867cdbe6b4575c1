"""measure_image: SimpleITK images, direction-aware zones."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from metrics.image import measure_image
from metrics.zones import LungSide, ZoneLevel
from segmentation.result import LungSegmentation


def _images(direction_z: float):
    hu = np.full((9, 12, 12), -1000, np.int16)
    lungs = np.zeros(hu.shape, np.uint8)
    lungs[:, 2:10, 1:6] = 1
    lungs[:, 2:10, 6:11] = 2
    lesions = np.zeros_like(lungs)
    lesions[6:9, 2:10, 1:6] = 1  # the three highest-index slices of the right lung
    images = []
    for array in (hu, lungs, lesions):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.7, 0.7, 2.0))
        image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, direction_z))
        images.append(image)
    return images


@pytest.mark.parametrize(("direction_z", "level"), [(1.0, ZoneLevel.UPPER), (-1.0, ZoneLevel.LOWER)])
def test_direction_decides_upper_and_lower(metrics_settings, direction_z, level):
    ct, lungs, lesions = _images(direction_z)
    segmentation = LungSegmentation(lungs=lungs, lesions=lesions, model_id="test", model_sha256="")
    m = measure_image(ct, segmentation, slice_thickness_mm=2.0, settings=metrics_settings)
    assert m.zone(LungSide.RIGHT, level).lesion_pct == 100.0
    assert m.spacing_z_mm == 2.0 and m.voxel_ml == pytest.approx(0.7 * 0.7 * 2.0 / 1000)


def test_mask_on_another_grid_is_refused(metrics_settings):
    ct, lungs, lesions = _images(1.0)
    small = sitk.GetImageFromArray(np.zeros((9, 12, 11), np.uint8))
    with pytest.raises(ValueError, match="lungs mask size"):
        measure_image(
            ct,
            LungSegmentation(lungs=small, lesions=lesions, model_id="t", model_sha256=""),
            slice_thickness_mm=2.0,
            settings=metrics_settings,
        )


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("direction", lambda image: image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))),
        ("origin", lambda image: image.SetOrigin((0.0, 0.0, 6.0))),
        ("spacing", lambda image: image.SetSpacing((0.7, 0.7, 2.5))),
    ],
)
def test_mask_of_the_same_size_on_another_grid_is_refused(metrics_settings, what, change):
    """Same size is not enough: a mask flipped, shifted or rescaled relative to the CT would be
    measured against the wrong anatomy (e.g. a lower-zone lesion reported as upper-zone)."""
    ct, lungs, lesions = _images(1.0)
    change(lesions)
    with pytest.raises(ValueError, match=f"lesions mask {what} .* differs from the CT {what}"):
        measure_image(
            ct,
            LungSegmentation(lungs=lungs, lesions=lesions, model_id="t", model_sha256=""),
            slice_thickness_mm=2.0,
            settings=metrics_settings,
        )


def test_mask_within_float32_header_precision_is_accepted(metrics_settings):
    """A NIfTI round trip stores origin and spacing as float32: that is still the CT's grid."""
    ct, lungs, lesions = _images(1.0)
    ct.SetOrigin((-171.123456789, 12.3456789, -301.987654321))
    for mask in (lungs, lesions):
        mask.SetOrigin(tuple(float(np.float32(v)) for v in ct.GetOrigin()))
        mask.SetSpacing(tuple(float(np.float32(v)) for v in ct.GetSpacing()))
    m = measure_image(
        ct,
        LungSegmentation(lungs=lungs, lesions=lesions, model_id="t", model_sha256=""),
        slice_thickness_mm=2.0,
        settings=metrics_settings,
    )
    assert m.zone(LungSide.RIGHT, ZoneLevel.UPPER).lesion_pct == 100.0
