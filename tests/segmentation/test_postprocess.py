"""Clean-up on the working grid and labels back on the input grid (segmentation.postprocess)."""

from __future__ import annotations

import numpy as np

from segmentation.grid import AxisMap
from segmentation.postprocess import (
    WorkingFields,
    cannot_be_lung,
    clean_lesions,
    clean_lungs,
    outside_air,
    to_input_grid,
)
from segmentation.preprocess import WorkingGrid


def _fields(right: np.ndarray, left: np.ndarray, lesion: np.ndarray | None = None) -> WorkingFields:
    shape = right.shape
    lung_prob = np.zeros((shape[0], 3) + shape[1:], np.float32)
    lung_prob[:, 1] = right
    lung_prob[:, 2] = left
    lung_prob[:, 0] = 1 - right - left
    lesion_prob = np.zeros_like(lung_prob)
    lesion_prob[:, 1] = 0 if lesion is None else lesion
    lesion_prob[:, 0] = 1 - lesion_prob[:, 1]
    return WorkingFields.from_probabilities(lung_prob, lesion_prob)


def _two_lungs(shape=(12, 40, 60)):
    right = np.zeros(shape, np.float32)
    left = np.zeros(shape, np.float32)
    right[2:10, 10:30, 5:25] = 0.95
    left[2:10, 10:30, 35:55] = 0.95
    return right, left


def test_small_components_are_removed_and_holes_filled():
    right, left = _two_lungs()
    right[5, 2, 2] = 0.9  # speck far from the lungs
    right[4:6, 18:21, 12:15] = 0.0  # hole (a vessel the network missed)
    fields = _fields(right, left)
    labels = clean_lungs(fields, min_component_fraction=0.02)
    assert labels[5, 2, 2] == 0 and fields.lung[5, 2, 2] == 0.0
    assert (labels[4:6, 18:21, 12:15] == 1).all() and (fields.lung[4:6, 18:21, 12:15] == 1.0).all()
    assert ((labels == 1) == (np.pad(np.ones((8, 20, 20), bool), ((2, 2), (10, 10), (5, 35))))).all()


AIR = -1.0  # -1024 HU in the normalised working intensity (hu_min -1024, hu_max 476)
LUNG = -0.8  # -874 HU
PURE_AIR = -0.935  # PURE_AIR_HU, -975 HU


def _cut_field_of_view() -> np.ndarray:
    """Working slices of a field of view that cuts through the left lung.

    The left lung's air reaches the right edge; the air above the body reaches the other edges.
    """
    image = np.full((4, 40, 60), 0.0, np.float32)  # soft tissue
    image[:, :3, :] = AIR
    image[:, 10:30, 5:25] = LUNG  # right lung, inside the body
    image[:, 10:30, 40:60] = LUNG  # left lung, cut by the edge
    return image


def test_edge_air_is_all_air_reaching_the_edge_and_marks_the_pure_air():
    edge = outside_air(_cut_field_of_view(), threshold=-0.33, pure_air=PURE_AIR)
    assert edge.candidates[:, :3, :].all() and edge.candidates[:, 10:30, 40:60].all()
    assert not edge.candidates[:, 10:30, 5:25].any()  # enclosed by the body
    assert edge.pure[:, :2, :].all()  # the air above the body (its last row borders tissue)
    assert not edge.pure[:, 10:30, 40:60].any()  # the cut lung is parenchyma, not pure air


def test_a_lung_cut_by_the_field_of_view_stays_and_air_around_the_body_goes():
    edge = outside_air(_cut_field_of_view(), threshold=-0.33, pure_air=PURE_AIR)
    right = np.zeros((4, 40, 60), np.float32)
    left = np.zeros_like(right)
    right[:, 10:30, 5:25] = 0.95
    left[:, 10:30, 40:60] = 0.95
    left[:, :3, 50:60] = 0.9  # the network calls a little of the air above the body lung
    outside = cannot_be_lung(edge, (right + left) > 0.5)
    assert not outside[:, 10:30, 40:60].any() and outside[:, :3, :].all()
    fields = _fields(right, left)
    labels = clean_lungs(fields, min_component_fraction=0.02, outside=edge)
    assert (labels[:, 10:30, 40:60] == 2).all()  # the cut lung stays
    assert (labels[:, :3, :] == 0).all() and (fields.lung[:, :3, :] == 0).all()  # the air above does not


def test_pure_air_is_outside_even_where_the_network_calls_it_lung():
    # A poor network (an early training step, a bad fine-tune) that calls every dark voxel lung.
    edge = outside_air(_cut_field_of_view(), threshold=-0.33, pure_air=PURE_AIR)
    lung = np.zeros((4, 40, 60), bool)
    lung[:, :3, :] = True
    lung[:, 10:30, 40:60] = True
    outside = cannot_be_lung(edge, lung)
    assert outside[:, :3, :].all()
    assert not outside[:, 10:30, 40:60].any()


def test_wrong_side_island_touching_the_other_lung_is_relabelled():
    right, left = _two_lungs()
    # A patch inside the left lung predicted as right lung.
    left[5:7, 15:18, 40:43] = 0.3
    right[5:7, 15:18, 40:43] = 0.65
    fields = _fields(right, left)
    labels = clean_lungs(fields, min_component_fraction=0.02)
    assert (labels[5:7, 15:18, 40:43] == 2).all()
    assert (fields.side[5:7, 15:18, 40:43] < 0).all()


def test_lesions_stay_inside_the_lungs_on_the_input_grid():
    right, left = _two_lungs()
    lesion = np.zeros_like(right)
    lesion[3:9, 5:35, 15:45] = 0.9  # straddles lungs and mediastinum
    fields = _fields(right, left, lesion)
    lungs_w = clean_lungs(fields, min_component_fraction=0.02)
    clean_lesions(fields, lungs_w, min_component_voxels=0)
    shape = right.shape
    grid = WorkingGrid(
        input_shape=(shape[0] * 2, shape[1] * 3, shape[2] * 3),
        z=AxisMap(0, shape[0] * 2, shape[0]),
        y=AxisMap(0, shape[1] * 3, shape[1]),
        x=AxisMap(0, shape[2] * 3, shape[2]),
        pad_y=(0, 0),
        pad_x=(0, 0),
    )
    lungs, lesions = to_input_grid(fields, lungs_w, grid, block=5)
    assert lungs.shape == grid.input_shape
    assert lesions.any()
    assert not (lesions[lungs == 0]).any()
    assert set(np.unique(lungs)) == {0, 1, 2}
    # Right lung on the patient's right (low column index), left lung on the left.
    assert np.nonzero(lungs == 1)[2].max() < np.nonzero(lungs == 2)[2].min()
    # Volume is preserved by linear interpolation of a box (up to the boundary voxels).
    assert abs((lungs == 1).sum() / ((right > 0.5).sum() * 18) - 1) < 0.05


def test_small_lesion_specks_can_be_dropped():
    right, left = _two_lungs()
    lesion = np.zeros_like(right)
    lesion[5, 20, 15] = 0.9
    lesion[3:8, 12:20, 40:50] = 0.9
    fields = _fields(right, left, lesion)
    lungs_w = clean_lungs(fields, min_component_fraction=0.02)
    clean_lesions(fields, lungs_w, min_component_voxels=3)
    assert fields.lesion[5, 20, 15] == 0.0 and fields.lesion[4, 15, 45] > 0.5


def test_noisy_probabilities_give_one_component_per_side():
    rng = np.random.default_rng(0)
    right, left = _two_lungs()
    noise = rng.random(right.shape).astype(np.float32)
    right = np.where(noise > 0.97, 0.9, right)  # hundreds of isolated specks outside the lungs
    left = np.where((noise < 0.02) & (right == 0), 0.9, left)
    fields = _fields(right, left)
    labels = clean_lungs(fields, min_component_fraction=0.02)
    from scipy import ndimage as ndi

    for side in (1, 2):
        _, n = ndi.label(labels == side, structure=ndi.generate_binary_structure(3, 2))
        assert n == 1
    assert ((fields.lung > 0.5) == (labels > 0)).all()


def test_a_lower_lesion_threshold_grows_the_lesion_exactly_where_the_probability_allows():
    from segmentation.postprocess import Thresholds

    right, left = _two_lungs()
    lesion = np.zeros(right.shape, np.float32)
    lesion[3:9, 12:28, 7:23] = 0.35  # an uncertain rim ...
    lesion[4:8, 15:25, 10:20] = 0.8  # ... around a confident core
    fields = _fields(right, left, lesion)
    for threshold, expected in ((0.5, 4 * 10 * 10), (0.3, 6 * 16 * 16)):
        shifted = fields.with_thresholds(Thresholds(lesion=threshold))
        lungs = clean_lungs(shifted, min_component_fraction=0.02)
        clean_lesions(shifted, lungs, min_component_voxels=0)
        assert int((shifted.lesion > 0.5).sum()) == expected
    assert float(fields.lesion.max()) == np.float32(0.8)  # the original fields are untouched


def test_thresholds_are_validated():
    import pytest

    from segmentation.postprocess import Thresholds

    assert Thresholds.from_dict(None) == Thresholds(0.5, 0.5)
    assert Thresholds.from_dict({"lesion_threshold": 0.3}).lesion == 0.3
    with pytest.raises(ValueError, match="lesion_threshold"):
        Thresholds.from_dict({"lesion_threshold": 1.5})
