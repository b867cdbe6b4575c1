"""Canonical orientation and separable resampling (segmentation.grid)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from segmentation.grid import (
    AxisMap,
    Canonical,
    axis_taps,
    canonical_array,
    downsample_taps,
    label_image_like,
    resample_axis,
    upsample_taps,
)


def _image(direction: np.ndarray, spacing=(1.0, 2.0, 3.0)) -> tuple[sitk.Image, np.ndarray]:
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(direction.ravel().tolist())
    return image, array


@pytest.mark.parametrize(
    "direction",
    [
        np.eye(3),
        np.diag([-1.0, -1.0, 1.0]),
        np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float),
        np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float),
    ],
)
def test_canonical_matches_dicomorient_and_round_trips(direction):
    image, array = _image(direction)
    canonical, canon = canonical_array(image, dtype=np.int16)
    expected = sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))
    assert np.array_equal(canonical, expected)
    assert canon.spacing_zyx == tuple(sitk.DICOMOrient(image, "LPS").GetSpacing()[::-1])
    back = label_image_like((canonical % 200).astype(np.uint8), canon, image)
    assert np.array_equal(sitk.GetArrayFromImage(back), (array % 200).astype(np.uint8))
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()


def test_canonical_rejects_2d():
    with pytest.raises(ValueError):
        Canonical.of(sitk.Image(4, 4, sitk.sitkInt16))


def test_taps_sum_to_one_and_keep_constants():
    for n_src, positions, half in [(10, np.linspace(-2, 12, 30), 1.0), (512, np.arange(190) * 2.7 + 0.85, 2.7)]:
        index, weight = axis_taps(n_src, positions, half)
        assert np.allclose(weight.sum(axis=1), 1.0, atol=1e-6)
        assert index.min() >= 0 and index.max() < n_src


def test_linear_upsampling_is_exact_on_a_ramp():
    axis = AxisMap(start=0, length=40, size=10)  # working voxels 4x coarser
    working = torch.arange(10, dtype=torch.float32)
    index, weight = upsample_taps(axis, 0, 40)
    out = resample_axis(working, 0, index, weight).numpy()
    # Input voxel i sits at working position (i + 0.5) / 4 - 0.5 (inside the range: exact).
    expected = (np.arange(40) + 0.5) / 4 - 0.5
    inside = (expected >= 0) & (expected <= 9)
    assert np.allclose(out[inside], expected[inside], atol=1e-5)


def test_downsampling_averages_a_checkerboard():
    axis = AxisMap.tiling(start=0, length=64, spacing=0.5, target_spacing=2.0)
    assert axis.size == 16 and axis.ratio == 4.0
    signal = torch.from_numpy(np.tile([0.0, 1.0], 32).astype(np.float32))
    index, weight = downsample_taps(axis, 64)
    out = resample_axis(signal, 0, index, weight).numpy()
    assert np.allclose(out[1:-1], 0.5, atol=0.02)  # anti-aliased: no beat pattern
