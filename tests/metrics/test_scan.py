"""measure_scan on synthetic masks with known voxel counts: volumes, fractions, zones, score, validation."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.quality import QualityFlag
from metrics.scan import measure_scan
from metrics.zones import LungSide, ZoneLevel

SPACING = (2.5, 0.75, 0.6)  # anisotropic (z, y, x) mm
VOXEL_ML = 2.5 * 0.75 * 0.6 / 1000.0


def measure(hu, lungs, lesions, settings, *, spacing=SPACING, superior_sign=1, thickness=2.5, padding=None):
    return measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=lesions,
        spacing_zyx=spacing,
        superior_sign=superior_sign,
        slice_thickness_mm=thickness,
        settings=settings,
        padding_hu=padding,
    )


@pytest.fixture
def two_lungs(empty_volume):
    """Right lung: slices 1..9 (9 slices), rows 4..13, cols 3..10; left lung the same at cols 13..20.

    Each lung: 9 x 10 x 8 = 720 voxels. Lesions in the right lung: GGO = 3 slices (1..3, the
    highest z indices are 7..9) ... placed explicitly per test.
    """
    hu, lungs, lesions = empty_volume((12, 20, 24))
    lungs[1:10, 4:14, 3:11] = 1
    lungs[1:10, 4:14, 13:21] = 2
    hu[lungs > 0] = -850
    return hu, lungs, lesions


def test_volumes_and_fractions_are_exact_with_anisotropic_spacing(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    lesions[1:10, 4:6, 3:11] = 1  # right GGO: 9 x 2 x 8 = 144
    lesions[1:10, 6:7, 3:11] = 2  # right consolidation: 9 x 1 x 8 = 72
    lesions[1:4, 4:14, 13:21] = 1  # left GGO: 3 x 10 x 8 = 240
    m = measure(hu, lungs, lesions, metrics_settings)
    assert m.voxel_ml == VOXEL_ML
    assert m.lung_right_ml == 720 * VOXEL_ML
    assert m.lung_left_ml == 720 * VOXEL_ML
    assert m.lung_ml == 1440 * VOXEL_ML
    assert m.ggo_ml == (144 + 240) * VOXEL_ML
    assert m.consolidation_ml == 72 * VOXEL_ML
    assert m.lesion_ml == (144 + 240 + 72) * VOXEL_ML
    assert m.ggo_right_ml == 144 * VOXEL_ML and m.ggo_left_ml == 240 * VOXEL_ML
    assert m.consolidation_right_ml == 72 * VOXEL_ML and m.consolidation_left_ml == 0.0
    assert m.lesion_pct == pytest.approx(100 * 456 / 1440, abs=1e-12)
    assert m.ggo_pct == pytest.approx(100 * 384 / 1440, abs=1e-12)
    assert m.consolidation_pct == pytest.approx(100 * 72 / 1440, abs=1e-12)
    assert m.lesion_right_pct == pytest.approx(30.0, abs=1e-12)
    assert m.lesion_left_pct == pytest.approx(100 * 240 / 720, abs=1e-12)
    assert m.ggo_right_pct == pytest.approx(20.0, abs=1e-12)
    assert m.consolidation_right_pct == pytest.approx(10.0, abs=1e-12)
    assert (m.size_x, m.size_y, m.size_z) == (24, 20, 12)
    assert (m.spacing_x_mm, m.spacing_y_mm, m.spacing_z_mm) == (0.6, 0.75, 2.5)
    assert m.lesion_outside_lung_ml == 0.0


def test_zones_thirds_scores_and_total(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    # 9 slices per lung (z = 1..9) -> thirds of 3 slices. With +z superior the upper third is z = 7..9.
    lesions[7:10, 4:14, 3:11] = 1  # right upper third fully involved: 100 % -> 5 points
    lesions[4:7, 4:6, 3:11] = 2  # right middle: 2 of 10 rows = 20 % -> 2 points
    lesions[1:4, 4:5, 13:21] = 1  # left lower: 1 of 10 rows = 10 % -> 2 points
    lesions[7:8, 4:5, 13:21] = 1  # left upper: 8 of 240 voxels = 3.33 % -> 1 point
    m = measure(hu, lungs, lesions, metrics_settings)
    zone = m.zone
    assert zone(LungSide.RIGHT, ZoneLevel.UPPER).lesion_pct == 100.0
    assert zone(LungSide.RIGHT, ZoneLevel.UPPER).score == 5
    assert zone(LungSide.RIGHT, ZoneLevel.MIDDLE).lesion_pct == pytest.approx(20.0)
    assert zone(LungSide.RIGHT, ZoneLevel.MIDDLE).score == 2
    assert zone(LungSide.RIGHT, ZoneLevel.LOWER).score == 0
    assert zone(LungSide.LEFT, ZoneLevel.LOWER).score == 2
    assert zone(LungSide.LEFT, ZoneLevel.UPPER).score == 1
    assert zone(LungSide.LEFT, ZoneLevel.MIDDLE).score == 0
    assert m.severity_score == 5 + 2 + 0 + 1 + 0 + 2
    assert m.severity_zones_n == 6
    for z in m.zones:
        assert z.n_slices == 3
        assert z.lung_ml == 240 * VOXEL_ML


def test_reversed_slice_order_gives_the_same_zones(two_lungs, metrics_settings):
    """The same anatomy stored feet-first (array flipped along z, superior_sign -1) measures the same."""
    hu, lungs, lesions = two_lungs
    lesions[7:10, 4:14, 3:11] = 1
    lesions[1:3, 4:8, 13:21] = 2
    head_first = measure(hu, lungs, lesions, metrics_settings, superior_sign=1)
    feet_first = measure(hu[::-1], lungs[::-1], lesions[::-1], metrics_settings, superior_sign=-1)
    assert head_first == feet_first
    assert head_first.zone(LungSide.RIGHT, ZoneLevel.UPPER).score == 5
    # ... while a wrong sign puts the lesion into the lower zone
    wrong = measure(hu, lungs, lesions, metrics_settings, superior_sign=-1)
    assert wrong.zone(LungSide.RIGHT, ZoneLevel.LOWER).score == 5
    assert wrong.zone(LungSide.RIGHT, ZoneLevel.UPPER).score == 0


def test_reversed_slice_order_gives_the_same_calibration_with_the_default_stride(default_metrics, updated):
    """The calibration sample (every 3rd slice) is counted from the feet whatever the storage order.

    41 slices (not a multiple of 3) of noisy air and soft tissue: counted from index 0 in each
    storage order, the two copies would sample different slices and peak at different HU.
    """
    settings = updated(default_metrics, calibration={"min_voxels": 50})
    assert settings.calibration.sample_stride == 3
    rng = np.random.default_rng(7)
    shape = (41, 30, 36)
    hu = np.full(shape, -1000.0)
    hu[:, 3:-3, 3:-3] = 40.0
    hu[:, 3:-3, 3:-3] += np.linspace(-25, 25, shape[0])[:, None, None]  # tissue drifts along z
    hu = np.rint(hu + rng.normal(0, 60, shape)).astype(np.int16)
    lungs = np.zeros(shape, np.uint8)
    lungs[5:36, 8:14, 8:16] = 1
    lungs[5:36, 8:14, 20:28] = 2
    lesions = np.zeros(shape, np.uint8)
    head_first = measure(hu, lungs, lesions, settings, superior_sign=1)
    feet_first = measure(hu[::-1], lungs[::-1], lesions[::-1], settings, superior_sign=-1)
    assert head_first.soft_tissue_hu is not None
    assert (head_first.air_hu, head_first.soft_tissue_hu) == (feet_first.air_hu, feet_first.soft_tissue_hu)
    assert head_first == feet_first


def test_zone_extent_is_per_lung(empty_volume, metrics_settings):
    """A shorter left lung gets its own thirds."""
    hu, lungs, lesions = empty_volume((12, 20, 24))
    lungs[0:12, 4:14, 3:11] = 1  # 12 slices -> 4 per third
    lungs[3:9, 4:14, 13:21] = 2  # 6 slices (z 3..8) -> 2 per third; upper = z 7..8
    m = measure(hu, lungs, lesions, metrics_settings)
    assert [m.zone(LungSide.RIGHT, lv).n_slices for lv in ZoneLevel] == [4, 4, 4]
    assert [m.zone(LungSide.LEFT, lv).n_slices for lv in ZoneLevel] == [2, 2, 2]
    assert m.zone(LungSide.LEFT, ZoneLevel.UPPER).lung_ml == 2 * 80 * VOXEL_ML


def test_empty_masks(empty_volume, metrics_settings):
    hu, lungs, lesions = empty_volume()
    m = measure(hu, lungs, lesions, metrics_settings)
    assert m.lung_ml == 0.0 and m.lesion_ml == 0.0
    assert m.lesion_pct is None and m.ggo_pct is None and m.lesion_right_pct is None
    assert m.severity_score is None and m.severity_zones_n == 0
    assert all(z.score is None and z.lesion_pct is None and z.n_slices == 0 for z in m.zones)
    assert m.lung_mean_hu is None and m.lung_p50_hu is None and m.lung_emphysema_like_pct is None
    assert QualityFlag.NO_LUNG in m.quality_flags
    assert QualityFlag.LUNG_VOLUME_IMPLAUSIBLE in m.quality_flags
    assert QualityFlag.RIGHT_LUNG_MISSING not in m.quality_flags  # NO_LUNG says it all


def test_lesion_free_lungs(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    m = measure(hu, lungs, lesions, metrics_settings)
    assert m.lesion_ml == 0.0 and m.lesion_pct == 0.0 and m.ggo_pct == 0.0 and m.consolidation_pct == 0.0
    assert m.severity_score == 0 and m.severity_zones_n == 6
    assert m.lesion_mean_hu is None and m.lesion_sd_hu is None
    assert m.non_lesion_mean_hu == -850.0 and m.lung_mean_hu == -850.0 and m.lung_sd_hu == 0.0


def test_one_lung_only(empty_volume, metrics_settings):
    hu, lungs, lesions = empty_volume((12, 20, 24))
    lungs[1:10, 4:14, 13:21] = 2
    lesions[1:10, 4:9, 13:21] = 1  # half of the left lung
    m = measure(hu, lungs, lesions, metrics_settings)
    assert m.lung_right_ml == 0.0 and m.lung_left_ml == 720 * VOXEL_ML
    assert m.lesion_right_pct is None and m.lesion_left_pct == 50.0 and m.lesion_pct == 50.0
    assert m.severity_zones_n == 3
    assert [m.zone(LungSide.LEFT, lv).score for lv in ZoneLevel] == [4, 4, 4]  # exactly 50 % -> 4 (Pan et al.: 50-75 %)
    assert m.severity_score == 12
    assert all(m.zone(LungSide.RIGHT, lv).score is None for lv in ZoneLevel)
    assert QualityFlag.RIGHT_LUNG_MISSING in m.quality_flags
    assert QualityFlag.LEFT_LUNG_MISSING not in m.quality_flags


def test_lesion_outside_lung_is_reported_not_counted(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    lesions[10, 4:6, 3:11] = 2  # slice 10 has no lung: 16 voxels outside
    lesions[5, 4:5, 3:11] = 1  # 8 voxels inside
    m = measure(hu, lungs, lesions, metrics_settings)
    assert m.lesion_outside_lung_ml == 16 * VOXEL_ML
    assert m.lesion_ml == 8 * VOXEL_ML
    assert m.consolidation_ml == 0.0
    assert QualityFlag.LESION_OUTSIDE_LUNG in m.quality_flags


def test_boolean_and_wider_integer_label_arrays_are_accepted(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    lesions[2:4, 4:6, 3:11] = 1
    reference = measure(hu, lungs, lesions, metrics_settings)
    wide = measure(hu.astype(np.int32), lungs.astype(np.int64), lesions.astype(np.int16), metrics_settings)
    assert wide == reference
    right_only = measure(hu, lungs == 1, lesions > 0, metrics_settings)
    assert right_only.lung_right_ml == reference.lung_right_ml and right_only.lung_left_ml == 0.0


def test_float_hu_is_rounded_to_integers(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    floats = hu.astype(np.float32)
    floats[lungs > 0] = -850.4
    m = measure(floats, lungs, lesions, metrics_settings)
    assert m.lung_mean_hu == -850.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lungs": 3}, "lungs: label values must lie in 0..2"),
        ({"lesions": 7}, "lesions: label values must lie in 0..2"),
        ({"lungs": -1}, "lungs: label values must lie in 0..2"),
    ],
)
def test_invalid_labels_are_refused(two_lungs, metrics_settings, change, message):
    hu, lungs, lesions = two_lungs
    arrays = {"lungs": lungs.astype(np.int16), "lesions": lesions.astype(np.int16)}
    name, value = next(iter(change.items()))
    arrays[name][0, 0, 0] = value
    with pytest.raises(ValueError, match=message):
        measure(hu, arrays["lungs"], arrays["lesions"], metrics_settings)


def test_bad_shapes_spacing_and_sign_are_refused(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    with pytest.raises(ValueError, match="shapes differ"):
        measure(hu, lungs[:-1], lesions, metrics_settings)
    with pytest.raises(ValueError, match="3-D"):
        measure(hu[0], lungs[0], lesions[0], metrics_settings)
    with pytest.raises(ValueError, match="spacing_zyx"):
        measure(hu, lungs, lesions, metrics_settings, spacing=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="superior_sign"):
        measure(hu, lungs, lesions, metrics_settings, superior_sign=0)
    with pytest.raises(ValueError, match="integer dtype"):
        measure(hu, lungs.astype(float), lesions, metrics_settings)


def test_as_row_flattens_zones_and_flags(two_lungs, metrics_settings):
    hu, lungs, lesions = two_lungs
    lesions[7:10, 4:14, 3:11] = 1
    row = measure(hu, lungs, lesions, metrics_settings).as_row()
    assert row["zone_right_upper_score"] == 5
    assert row["zone_left_lower_lesion_pct"] == 0.0
    assert row["lung_ml"] == 1440 * VOXEL_ML
    assert isinstance(row["quality_flags"], tuple)
    assert "zones" not in row
