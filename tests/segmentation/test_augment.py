"""Training augmentation (both implementations): label values survive, labels move with the image,
the draw is reproducible from the training generator."""

from __future__ import annotations

import pytest
import torch

from segmentation.synth.lesions import IGNORE_LABEL
from segmentation.training.augment import augment_batch
from segmentation.training.augment_monai import MonaiAugmenter

H, W = 96, 128


def _batch(n: int = 5):
    image = torch.full((n, 3, H, W), -1.0)
    lungs = torch.zeros((n, H, W), dtype=torch.long)
    lesions = torch.zeros((n, H, W), dtype=torch.long)
    image[:, :, 20:80, 10:60] = -0.8  # right lung
    lungs[:, 20:80, 10:60] = 1
    image[:, :, 20:80, 68:118] = -0.8  # left lung
    lungs[:, 20:80, 68:118] = 2
    image[:, :, 30:50, 15:40] = 0.0  # consolidation in the right lung
    lesions[:, 30:50, 15:40] = 2
    lesions[:, 60:70, 80:100] = IGNORE_LABEL
    return image, lungs, lesions


def _monai(image, lungs, lesions, gen, strength=1.0):
    return MonaiAugmenter(crop=(H, W), strength=strength)(image, lungs, lesions, gen)


def _torch(image, lungs, lesions, gen, strength=1.0):
    return augment_batch(image, lungs, lesions, gen, strength=strength)


@pytest.mark.parametrize("augment", [_monai, _torch], ids=["monai", "torch"])
def test_labels_stay_labels_and_follow_the_image(augment):
    image, lungs, lesions = augment(*_batch(), torch.Generator().manual_seed(3))
    assert image.shape == (5, 3, H, W) and image.dtype == torch.float32
    assert lungs.shape == lesions.shape == (5, H, W) and lungs.dtype == lesions.dtype == torch.long
    assert set(torch.unique(lungs).tolist()) <= {0, 1, 2}
    assert set(torch.unique(lesions).tolist()) <= {0, 1, 2, IGNORE_LABEL}
    assert (lungs == 1).any() and (lungs == 2).any() and (lesions == 2).any()
    # Nearest-neighbour labels and interpolated intensities still agree: the consolidation label
    # sits on dense voxels, the lung label on aerated ones, outside the lungs is mostly air.
    centre = image[:, 1]
    assert centre[lesions == 2].mean() > -0.3
    assert centre[(lungs > 0) & (lesions == 0)].mean() < -0.6
    # No left/right flip: the right lung (label 1) stays on the low-x side.
    xs = torch.arange(W).expand(5, H, W)
    assert xs[lungs == 1].float().mean() < xs[lungs == 2].float().mean()


@pytest.mark.parametrize("augment", [_monai, _torch], ids=["monai", "torch"])
def test_the_draw_is_reproducible_and_varies(augment):
    a = augment(*_batch(), torch.Generator().manual_seed(11))
    b = augment(*_batch(), torch.Generator().manual_seed(11))
    c = augment(*_batch(), torch.Generator().manual_seed(12))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_monai_groups_draw_independently():
    """Samples in different groups get different geometry (a batch is not one transform)."""
    image, lungs, _ = _monai(*_batch(6), torch.Generator().manual_seed(1))
    first, last = lungs[0], lungs[-1]
    assert not torch.equal(first, last)


def test_strength_zero_keeps_the_geometry():
    image, lungs, lesions = _batch()
    _, lungs_out, lesions_out = _monai(image.clone(), lungs.clone(), lesions.clone(), torch.Generator(), strength=0.0)
    assert torch.equal(lungs_out, lungs) and torch.equal(lesions_out, lesions)
