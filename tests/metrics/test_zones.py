"""Zone split into cranio-caudal thirds per lung, and the superior direction from the image direction."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.zones import extent_gap_fraction, slice_zones, superior_sign_from_direction


@pytest.mark.parametrize(
    ("n", "from_apex"),
    [
        (1, [1]),  # a single slice: its centre lies in the middle third
        (2, [0, 2]),  # centres at 1/4 and 3/4 of the extent
        (3, [0, 1, 2]),
        (4, [0, 1, 1, 2]),
        (5, [0, 0, 1, 2, 2]),
        (6, [0, 0, 1, 1, 2, 2]),
        (7, [0, 0, 1, 1, 1, 2, 2]),  # centres at 3(2a+1)/14 = 0.21, 0.64, 1.07, ..., 2.79: 2 / 3 / 2
        (9, [0, 0, 0, 1, 1, 1, 2, 2, 2]),
    ],
)
def test_thirds_by_slice_centre(n, from_apex):
    present = np.zeros(n + 4, bool)
    present[2 : 2 + n] = True
    head_up = slice_zones(present, superior_sign=1)  # the apex is the highest index
    assert list(head_up[2 : 2 + n]) == from_apex[::-1]
    feet_up = slice_zones(present, superior_sign=-1)  # the apex is the lowest index
    assert list(feet_up[2 : 2 + n]) == from_apex
    assert list(head_up[:2]) == [-1, -1] and list(head_up[-2:]) == [-1, -1]


def test_gaps_inside_the_extent_count_as_slices():
    present = np.array([0, 1, 0, 0, 0, 1], bool)  # extent 1..5 = 5 slices
    assert list(slice_zones(present, superior_sign=-1)) == [-1, 0, 0, 1, 2, 2]


def test_no_lung_gives_no_zone():
    assert list(slice_zones(np.zeros(4, bool), superior_sign=1)) == [-1, -1, -1, -1]


def test_bad_sign_is_refused():
    with pytest.raises(ValueError):
        slice_zones(np.ones(3, bool), superior_sign=0)


def test_superior_sign_from_direction():
    identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert superior_sign_from_direction(identity) == 1
    flipped = (1, 0, 0, 0, 1, 0, 0, 0, -1)
    assert superior_sign_from_direction(flipped) == -1
    tilted = (1, 0, 0, 0, 0.94, 0.34, 0, -0.34, 0.94)  # 20 degrees of tilt is still axial
    assert superior_sign_from_direction(tilted) == 1
    coronal = (1, 0, 0, 0, 0, 1, 0, -1, 0)  # k axis along y: not axial
    with pytest.raises(ValueError, match="not an axial stack"):
        superior_sign_from_direction(coronal)
    with pytest.raises(ValueError, match="9 values"):
        superior_sign_from_direction((1, 0, 0))


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ([0, 0, 0], 0.0),
        ([0, 1, 1, 1, 0], 0.0),
        ([1, 0, 1, 1], 0.25),
        ([0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0], 7 / 9),
    ],
)
def test_extent_gap_fraction_counts_empty_slices_inside_the_extent(present, expected):
    assert extent_gap_fraction(np.array(present)) == pytest.approx(expected)
