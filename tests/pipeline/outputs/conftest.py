"""A small CT volume with known lung and lesion labels, built with a fixed seed."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.result import LungSegmentation


def make_case(*, shape=(12, 40, 48), spacing=(0.8, 0.9, 2.5), direction=None, seed: int = 7):
    """CT + segmentation: two box 'lungs', a GGO block in the right and consolidation in the left."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    ct = np.full(shape, 40, dtype=np.int16) + rng.integers(-20, 20, size=shape, dtype=np.int16)
    lungs = np.zeros(shape, dtype=np.uint8)
    lungs[2:10, 8:32, 4:22] = 1  # right lung: low x (patient right)
    lungs[2:10, 8:32, 26:44] = 2
    ct[lungs > 0] = -850
    lesions = np.zeros(shape, dtype=np.uint8)
    lesions[4:7, 10:20, 6:14] = 1
    lesions[5:9, 20:30, 30:40] = 2
    ct[lesions == 1] = -500
    ct[lesions == 2] = 20
    images = []
    for array in (ct, lungs, lesions):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        image.SetOrigin((-20.0, -18.0, -30.0))
        if direction is not None:
            image.SetDirection(direction)
        images.append(image)
    seg = LungSegmentation(lungs=images[1], lesions=images[2], model_id="test-model-1", model_sha256="ab" * 32)
    return images[0], seg


@pytest.fixture
def case():
    return make_case()
