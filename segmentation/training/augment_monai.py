"""Batch augmentation built from MONAI transforms (``segmentation.training.augmentation: monai``).

The same families as :mod:`segmentation.training.augment`, but drawn by MONAI's randomised
dictionary transforms:

* geometry: :class:`monai.transforms.Rand2DElasticd` (rotation, anisotropic scale, shear,
  translation and a smooth elastic displacement in one resampling); image bilinear, labels
  nearest, so the lung and lesion targets stay exact label values (255 = ignore survives);
* intensity: gain around air (:class:`~monai.transforms.ShiftIntensityd` +
  :class:`~monai.transforms.RandScaleIntensityd`) and a HU shift
  (:class:`~monai.transforms.RandShiftIntensityd`): a wrong calibration or contrast;
* reconstruction kernel and resolution: :class:`~monai.transforms.RandGaussianSmoothd` (soft
  kernels), :class:`~monai.transforms.RandGaussianSharpend` (sharp kernels),
  :class:`~monai.transforms.RandSimulateLowResolutiond` (a coarser in-plane matrix);
* noise: :class:`~monai.transforms.RandGaussianNoised`.

Then the two CT-specific ones MONAI has no transform for (a reconstruction circle that cuts the
body, air pockets that are not lung) come from :mod:`segmentation.training.augment`.

MONAI's transforms work on one sample at a time, which on two CPU cores costs more than the
network step for a batch of 12; samples are therefore augmented in groups of
:data:`GROUP_SIZE` that share one random draw (their channels are stacked), so a batch still
holds several independent draws. Every batch re-seeds the transforms from the training's torch
generator, so training stays deterministic.
"""

from __future__ import annotations

import math

import torch

#: Samples of a batch that share one random draw of the MONAI transforms.
GROUP_SIZE = 3


class MonaiAugmenter:
    """Callable ``(image, lungs, lesions, gen) -> (image, lungs, lesions)`` for training batches.

    Parameters
    ----------
    crop
        ``(height, width)`` of the training crops (translations are relative to it).
    strength
        Scale of every random range (0 = geometry and intensity left alone; noise off).
    """

    def __init__(self, *, crop: tuple[int, int], strength: float) -> None:
        from monai.transforms import (
            Compose,
            Rand2DElasticd,
            RandGaussianNoised,
            RandGaussianSharpend,
            RandGaussianSmoothd,
            RandScaleIntensityd,
            RandShiftIntensityd,
            RandSimulateLowResolutiond,
            ShiftIntensityd,
        )

        h, w = crop
        s = float(strength)
        self.strength = s
        both = ("image", "labels")
        self.transform = Compose(
            [
                Rand2DElasticd(
                    keys=both,
                    spacing=(max(8, h // 8), max(8, w // 8)),
                    magnitude_range=(0.0, 1.5 * s),
                    prob=1.0 if s > 0 else 0.0,
                    rotate_range=math.radians(12) * s,
                    shear_range=0.06 * s,
                    translate_range=(0.06 * h * s, 0.06 * w * s),
                    scale_range=(0.15 * s, 0.15 * s),
                    mode=("bilinear", "nearest"),
                    padding_mode="border",
                ),
                # Gain about air (normalised -1): (x + 1) * g - 1, i.e. +-6 % contrast; then +-25 HU.
                ShiftIntensityd(keys="image", offset=1.0),
                RandScaleIntensityd(keys="image", factors=0.06 * s, prob=1.0),
                ShiftIntensityd(keys="image", offset=-1.0),
                RandShiftIntensityd(keys="image", offsets=0.033 * s, prob=1.0),
                RandGaussianSmoothd(keys="image", sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0), prob=0.2 * min(1.0, s)),
                RandGaussianSharpend(
                    keys="image",
                    sigma1_x=(0.3, 0.6),
                    sigma1_y=(0.3, 0.6),
                    sigma2_x=0.9,
                    sigma2_y=0.9,
                    alpha=(0.3, 1.5),
                    prob=0.2 * min(1.0, s),
                ),
                RandSimulateLowResolutiond(
                    keys="image",
                    prob=0.15 * min(1.0, s),
                    downsample_mode="area",
                    upsample_mode="bilinear",
                    zoom_range=(0.5, 0.9),
                ),
                RandGaussianNoised(keys="image", prob=1.0 if s > 0 else 0.0, std=0.04 * s),
            ]
        )

    def __call__(
        self, image: torch.Tensor, lungs: torch.Tensor, lesions: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from segmentation.training.augment import _air_pockets, _field_of_view

        n, c, h, w = image.shape
        self.transform.set_random_state(seed=int(torch.randint(2**31 - 1, (1,), generator=gen)))
        images, lung_out, lesion_out = [], [], []
        for g0 in range(0, n, GROUP_SIZE):
            g1 = min(n, g0 + GROUP_SIZE)
            k = g1 - g0
            labels = torch.cat([lungs[g0:g1], lesions[g0:g1]]).float()  # (2k, H, W)
            out = self.transform({"image": image[g0:g1].reshape(k * c, h, w), "labels": labels})
            images.append(torch.as_tensor(out["image"]).reshape(k, c, h, w).float())
            warped = torch.as_tensor(out["labels"]).round().long()
            lung_out.append(warped[:k])
            lesion_out.append(warped[k:])
        image, lungs, lesions = torch.cat(images), torch.cat(lung_out), torch.cat(lesion_out)
        image, lungs, lesions = _field_of_view(image, lungs, lesions, gen, probability=0.25 * min(1.0, self.strength))
        image = _air_pockets(image, lungs, gen, probability=0.3 * min(1.0, self.strength))
        return image.clamp(-1.2, 1.2).contiguous(), lungs.contiguous(), lesions.contiguous()
