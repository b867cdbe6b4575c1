"""Working grid and network input (segmentation.preprocess)."""

from __future__ import annotations

import numpy as np

from segmentation.grid import downsample_taps
from segmentation.preprocess import (
    PreprocessParameters,
    body_box,
    context_stack,
    resample_to_working,
    to_working,
    working_blocks,
)
from segmentation.synth.phantom import make_phantom

PARAMS = PreprocessParameters(
    spacing_zyx_mm=(2.5, 1.75, 1.75),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=5.0,
    size_multiple=16,
    context_offsets=(-2, -1, 0, 1, 2),
)


def test_working_grid_crops_to_the_body_and_pads_to_the_stride():
    phantom = make_phantom(shape=(20, 128, 160), spacing_zyx=(5.0, 2.5, 2.5))
    working, grid = to_working(phantom.hu, phantom.spacing_zyx, PARAMS)
    assert working.shape == grid.shape
    assert working.shape[1] % 16 == 0 and working.shape[2] % 16 == 0
    assert grid.z.size == 40  # 20 slices x 5 mm at 2.5 mm
    # The crop hugs the body (plus 5 mm margin), not the whole 400 mm field of view.
    assert grid.x.length < 160 and grid.x.start > 0
    assert abs(grid.x.length * 2.5 / grid.x.size - 1.75) < 0.05
    assert working.min() >= -1.0 and working.max() <= 1.0
    # The couch below the body is outside the crop or at its edge; air maps to -1.
    assert np.isclose(working[:, 0, 0], -1.0).all()


def test_body_box_of_an_empty_volume_is_everything():
    rows, cols = body_box(np.full((4, 30, 40), -1000.0), (2.0, 1.0, 1.0), threshold_hu=-500, margin_mm=5)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 30, 0, 40)


def test_body_box_keeps_every_sizeable_part_of_the_body_and_drops_specks():
    # An image cropped so close that the chest wall falls apart: a large central piece
    # (mediastinum, spine), a smaller lateral piece across a lung, and a speck (a cable).
    hu = np.full((6, 120, 200), -1000.0)
    hu[:, 20:100, 60:120] = 40.0  # largest part: 80 x 60 pixels
    hu[:, 30:90, 170:185] = 40.0  # lateral part: 60 x 15 = 19 % of the largest
    hu[:, 5:11, 5:11] = 40.0  # speck: 36 pixels, under 1 %
    rows, cols = body_box(hu, (2.0, 1.0, 1.0), threshold_hu=-500, margin_mm=5)
    # The lateral part is inside the crop (with the 5 mm margin), the speck is not.
    assert cols.stop >= 185 and cols.start > 11
    assert rows.start >= 12 and rows.stop <= 108  # the largest part, 5 mm margin, 3 mm sampling
    # Without the lateral part the crop ends at the largest part.
    hu[:, 30:90, 170:185] = -1000.0
    _, cols_alone = body_box(hu, (2.0, 1.0, 1.0), threshold_hu=-500, margin_mm=5)
    assert cols_alone.stop < 170


def test_block_size_does_not_change_the_result():
    phantom = make_phantom(shape=(24, 96, 96), spacing_zyx=(3.0, 2.0, 2.0))
    _, grid = to_working(phantom.hu, phantom.spacing_zyx, PARAMS)
    a = resample_to_working(phantom.hu, grid, fill=-1024.0, block=3)
    b = resample_to_working(phantom.hu, grid, fill=-1024.0, block=64)
    assert np.allclose(a, b, atol=1e-3)


def test_thin_slices_are_read_in_bounded_blocks_with_the_same_result():
    phantom = make_phantom(shape=(120, 64, 64), spacing_zyx=(0.5, 3.0, 3.0))
    _, grid = to_working(phantom.hu, phantom.spacing_zyx, PARAMS)
    z_index, _ = downsample_taps(grid.z, phantom.hu.shape[0])
    blocks = list(working_blocks(z_index, block=32, max_input_slices=16))
    # Every block reads at most 16 input slices (a 2.5 mm working slice spans about 11 of
    # the 0.5 mm ones), and together the blocks cover every working slice once.
    assert all(z_index[a:b].max() - z_index[a:b].min() < 16 for a, b in blocks)
    assert [a for a, _ in blocks][1:] == [b for _, b in blocks][:-1] and blocks[-1][1] == grid.z.size
    one = working_blocks(z_index, block=32, max_input_slices=2)
    assert all(b - a == 1 for a, b in one)  # never fewer than one working slice
    bounded = resample_to_working(phantom.hu, grid, fill=-1024.0, max_input_slices=16)
    whole = resample_to_working(phantom.hu, grid, fill=-1024.0, max_input_slices=10_000)
    assert np.allclose(bounded, whole, atol=1e-3)


def test_context_stack_replicates_the_edges():
    volume = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 2), np.float32)
    stack = context_stack(volume, np.array([0, 4]), (-2, -1, 0, 1, 2))
    assert stack.shape == (2, 5, 2, 2)
    assert stack[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2]
    assert stack[1, :, 0, 0].tolist() == [2, 3, 4, 4, 4]


def test_in_plane_resize_equals_the_triangle_taps():
    import torch

    from segmentation.grid import downsample_taps, resample_axis

    rng = np.random.default_rng(0)
    volume = rng.normal(size=(6, 70, 90)).astype(np.float32) * 100
    _, grid = to_working(np.full((6, 70, 90), 40.0, np.float32), (2.5, 0.7, 0.6), PARAMS)
    fast = resample_to_working(volume, grid, fill=0.0)[grid.unpadded()]
    t = torch.from_numpy(
        volume[:, grid.y.start : grid.y.start + grid.y.length, grid.x.start : grid.x.start + grid.x.length]
    )
    for axis, amap in ((1, grid.y), (2, grid.x)):
        index, weight = downsample_taps(type(amap)(0, amap.length, amap.size), amap.length)
        t = resample_axis(t, axis, index, weight)
    assert np.allclose(fast, t.numpy(), atol=1e-3)
