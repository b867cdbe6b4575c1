"""Quality flags and the HU calibration check."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.calibration import estimate_peak
from metrics.quality import QualityFlag, format_flags
from metrics.scan import measure_scan


def _chest(shift: int = 0, *, noise: bool = True):
    """A 16x40x40 'chest': noisy air around a +40 HU body holding two -850 HU lungs away from the borders."""
    rng = np.random.default_rng(3)
    shape = (16, 40, 40)
    hu = (rng.normal(-1000, 8, shape) if noise else np.full(shape, -1000.0)).round()
    hu[:, 6:34, 4:36] = rng.normal(40, 10, (16, 28, 32)).round() if noise else 40
    lungs = np.zeros(shape, np.uint8)
    lungs[2:14, 10:30, 7:19] = 1
    lungs[2:14, 10:30, 21:33] = 2
    hu[lungs > 0] = -850
    return (hu + shift).astype(np.int16), lungs, np.zeros(shape, np.uint8)


def _measure(hu, lungs, lesions, settings, *, spacing=(5.0, 8.0, 8.0), thickness=5.0, padding=None):
    return measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=lesions,
        spacing_zyx=spacing,
        superior_sign=1,
        slice_thickness_mm=thickness,
        settings=settings,
        padding_hu=padding,
    )


def test_a_plausible_scan_has_no_flags(metrics_settings):
    m = _measure(*_chest(), metrics_settings)
    # 2 x 12 x 20 x 12 voxels of 320 mm^3 = 1843.2 mL: plausible
    assert m.lung_ml == pytest.approx(1843.2)
    assert m.quality_flags == ()
    assert abs(m.air_hu - -1000) <= 5 and abs(m.soft_tissue_hu - 40) <= 5


@pytest.mark.parametrize(
    ("shift", "flags"),
    [(150, {"HU_AIR_OFF", "HU_SOFT_TISSUE_OFF"}), (-60, {"HU_AIR_OFF", "HU_SOFT_TISSUE_OFF"}), (30, set())],
)
def test_calibration_shift_is_flagged(metrics_settings, shift, flags):
    m = _measure(*_chest(shift), metrics_settings)
    assert {f.value for f in m.quality_flags} == flags


def test_missing_rescale_intercept_is_flagged(metrics_settings):
    """Stored values without the -1024 intercept: air at ~24, tissue at ~1064.

    The air check catches it; the soft-tissue window then finds the shifted air (~24 HU) and
    does not object -- one flag is enough to send the scan for review.
    """
    m = _measure(*_chest(1024), metrics_settings)
    assert m.air_hu is None
    assert QualityFlag.HU_AIR_OFF in m.quality_flags
    assert abs(m.soft_tissue_hu - 24) <= 5


def test_padding_value_is_ignored_by_the_air_check(metrics_settings):
    """Air that exists only as the exact padding value (out-of-FOV fill) does not count as calibrated air."""
    hu, lungs, lesions = _chest(noise=False)
    assert _measure(hu, lungs, lesions, metrics_settings, padding=None).air_hu == -1000
    padded = _measure(hu, lungs, lesions, metrics_settings, padding=-1000)
    assert padded.air_hu is None and QualityFlag.HU_AIR_OFF in padded.quality_flags


def test_estimate_peak_smoothing_and_window():
    counts = np.zeros(4000, np.int64)
    low = -2000
    counts[-1003 - low] = 50  # a noise spike
    counts[-990 - low : -970 - low] = 30  # the real, broad peak (20 bins x 30)
    peak = estimate_peak(
        counts,
        low,
        expected_hu=-1000,
        half_width_hu=100,
        tolerance_hu=50,
        smoothing_hu=9,
        min_voxels=10,
        padding_hu=None,
    )
    assert -990 <= peak.mode_hu <= -970 and not peak.off
    assert peak.n_voxels == 650
    far = estimate_peak(
        counts,
        low,
        expected_hu=40,
        half_width_hu=100,
        tolerance_hu=40,
        smoothing_hu=9,
        min_voxels=10,
        padding_hu=None,
    )
    assert far.mode_hu is None and far.n_voxels == 0 and far.off


def test_thick_slices_flag_uses_thickness_or_spacing(metrics_settings):
    chest = _chest()
    assert QualityFlag.THICK_SLICES not in _measure(*chest, metrics_settings, thickness=5.0).quality_flags
    assert QualityFlag.THICK_SLICES in _measure(*chest, metrics_settings, thickness=5.5).quality_flags
    no_tag = _measure(*chest, metrics_settings, spacing=(6.0, 8.0, 8.0), thickness=None)
    assert QualityFlag.THICK_SLICES in no_tag.quality_flags


def test_lung_cut_by_the_field_of_view(metrics_settings):
    hu, lungs, lesions = _chest()
    lungs[0, 12, 12] = 1
    assert QualityFlag.LUNG_CUT_CRANIOCAUDAL in _measure(hu, lungs, lesions, metrics_settings).quality_flags
    hu, lungs, lesions = _chest()
    lungs[-1, 12, 12] = 2
    assert QualityFlag.LUNG_CUT_CRANIOCAUDAL in _measure(hu, lungs, lesions, metrics_settings).quality_flags
    hu, lungs, lesions = _chest()
    lungs[5, 12, -1] = 2
    flags = _measure(hu, lungs, lesions, metrics_settings).quality_flags
    assert QualityFlag.LUNG_CUT_IN_PLANE in flags and QualityFlag.LUNG_CUT_CRANIOCAUDAL not in flags


def _tall_chest():
    """A 40-slice chest whose lungs fill slices 5-30 (26 slices)."""
    shape = (40, 40, 40)
    hu = np.full(shape, -1000, np.int16)
    hu[:, 6:34, 4:36] = 40
    lungs = np.zeros(shape, np.uint8)
    lungs[5:31, 10:30, 7:19] = 1
    lungs[5:31, 10:30, 21:33] = 2
    hu[lungs > 0] = -850
    return hu, lungs, np.zeros(shape, np.uint8)


@pytest.mark.parametrize(
    ("stray_slice", "flagged", "left_extent"),
    [
        (31, False, 27),  # touching the lung: no gap
        (32, False, 28),  # 1 empty slice of 28 (3.6 %): a stray voxel next to the lung
        (36, True, 32),  # 5 empty slices of 32 (15.6 %): the zones span the gap
    ],
)
def test_a_gap_in_a_lungs_extent_is_flagged(metrics_settings, stray_slice, flagged, left_extent):
    hu, lungs, lesions = _tall_chest()
    lungs[stray_slice, 15, 25] = 2
    result = _measure(hu, lungs, lesions, metrics_settings)
    assert (QualityFlag.LUNG_EXTENT_GAP in result.quality_flags) is flagged
    left_slices = sum(z.n_slices for z in result.zones if z.side == "left")
    right_slices = sum(z.n_slices for z in result.zones if z.side == "right")
    assert (left_slices, right_slices) == (left_extent, 26)


def test_implausible_volume(metrics_settings):
    small = _measure(*_chest(), metrics_settings, spacing=(1.0, 1.0, 1.0), thickness=1.0)  # 5760 voxels = 5.8 mL
    assert QualityFlag.LUNG_VOLUME_IMPLAUSIBLE in small.quality_flags
    huge = _measure(*_chest(), metrics_settings, spacing=(5.0, 20.0, 20.0))  # 11520 mL
    assert QualityFlag.LUNG_VOLUME_IMPLAUSIBLE in huge.quality_flags


def test_format_flags():
    assert format_flags([QualityFlag.THICK_SLICES, QualityFlag.HU_AIR_OFF, "THICK_SLICES"]) == "HU_AIR_OFF;THICK_SLICES"
    assert format_flags("B; A;;") == "A;B"
    assert format_flags(None) == "" and format_flags(()) == ""
