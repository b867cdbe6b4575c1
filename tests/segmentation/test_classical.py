"""The classical HU-threshold segmenter on a synthetic thorax phantom."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.classical import DEFAULT_PARAMETERS, segment_lesions, segment_lungs, split_left_right
from segmentation.synth.phantom import make_phantom


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("touching", [False, True])
def test_lungs_of_the_phantom(touching):
    phantom = make_phantom(touching=touching)
    result = segment_lungs(phantom.hu, phantom.spacing_zyx)
    for label in (1, 2):
        assert _dice(result.lungs == label, phantom.lungs == label) > 0.99
    # Trachea and main bronchi are not lung (the bronchus tip enclosed by lung at the hilum may be).
    assert (result.lungs[phantom.airway] > 0).mean() < 0.05
    trachea = phantom.airway.copy()
    trachea[: int(0.62 * phantom.hu.shape[0]) + 1] = False
    assert trachea.any() and not (result.lungs[trachea] > 0).any()


def test_split_left_right_assigns_sides_by_position():
    mask = np.zeros((6, 30, 40), bool)
    mask[:, 5:25, 3:19] = True
    mask[:, 5:25, 21:37] = True
    mask[:, 10:12, 19:21] = True  # a bridge at the junction line
    sides = split_left_right(mask, (2.0, 1.0, 1.0))
    assert (sides[:, 5:25, 3:15] == 1).all() and (sides[:, 5:25, 25:37] == 2).all()


def test_baseline_lesions_find_a_dense_blob_and_ignore_vessels():
    phantom = make_phantom()
    hu = phantom.hu.copy()
    z, y, x = np.ogrid[: hu.shape[0], : hu.shape[1], : hu.shape[2]]
    centre = np.array([25, 60, 45])
    blob = ((z - centre[0]) * 5.0) ** 2 + ((y - centre[1]) * 2.5) ** 2 + ((x - centre[2]) * 2.5) ** 2 <= 15.0**2
    blob &= phantom.lungs == 1
    hu[blob] = -550.0
    lesions = segment_lesions(hu, phantom.lungs, phantom.spacing_zyx, DEFAULT_PARAMETERS)
    assert _dice(lesions == 1, blob) > 0.8
    assert (lesions[~blob] == 0).mean() > 0.999
