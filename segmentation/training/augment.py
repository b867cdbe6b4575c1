"""Batch augmentation on the working grid (torch, in the training process).

Geometry: one ``grid_sample`` per batch applies a random affine (rotation, anisotropic scale,
shear, translation) plus a smooth elastic displacement; labels are warped with nearest
neighbour. Left/right mirroring only on request (``mirror``, default 0): the side of each lung
is part of what the network learns, so a mirrored sample swaps the right and left lung labels and
keeps the canonical convention (the patient's right lung on the image's left); what it adds is
each lung's outline on the other side.
Intensity: HU shift and contrast, Gaussian blur or unsharp masking (soft/sharp kernels), and
noise, all in the normalised intensity domain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _affine_grid(n: int, h: int, w: int, gen: torch.Generator, *, strength: float) -> torch.Tensor:
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12) * strength
    scale = torch.exp((torch.rand(n, generator=gen) * 2 - 1) * 0.18 * strength)
    aniso = torch.exp((torch.rand(n, 2, generator=gen) * 2 - 1) * 0.06 * strength)
    shear = (torch.rand(n, generator=gen) * 2 - 1) * 0.06 * strength
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.12 * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    sx, sy = 1.0 / (scale * aniso[:, 0]), 1.0 / (scale * aniso[:, 1])
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin * sx + shear
    theta[:, 1, 0] = sin * sy
    theta[:, 1, 1] = cos * sy
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False)
    # Elastic part: a coarse random displacement, upsampled (about 8 control points per side).
    coarse = (torch.rand(n, 2, 8, 8, generator=gen) * 2 - 1) * 0.03 * strength
    disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return grid + disp


def augment_batch(
    image: torch.Tensor,
    lungs: torch.Tensor,
    lesions: torch.Tensor,
    gen: torch.Generator,
    *,
    strength: float = 1.0,
    mirror: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment a batch: image (N, C, H, W) float, lungs/lesions (N, H, W) int64.

    ``mirror`` is the probability that a sample is mirrored left/right (:func:`mirror_samples`);
    at 0 no random number is drawn for it, so the batches are those of the shipped recipe.
    """
    n, _, h, w = image.shape
    if mirror > 0:
        image, lungs, lesions = mirror_samples(image, lungs, lesions, torch.rand(n, generator=gen) < mirror)
    grid = _affine_grid(n, h, w, gen, strength=strength)
    image = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    labels = torch.stack([lungs, lesions], dim=1).float()
    labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="border", align_corners=False)
    lungs, lesions = labels[:, 0].long(), labels[:, 1].long()

    image, lungs, lesions = _field_of_view(image, lungs, lesions, gen, probability=0.25 * min(1.0, strength))
    image = _air_pockets(image, lungs, gen, probability=0.3 * min(1.0, strength))

    # Intensity: shift about +-25 HU, contrast +-6 % (normalised units: 1 = 750 HU).
    shift = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.033 * strength
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.06 * strength
    image = (image + 1) * gain - 1 + shift
    # Kernel: blur, sharpen, or leave.
    choice = torch.rand(n, generator=gen)
    blurred = _blur(image, sigma=0.8)
    blur_amount = torch.rand(n, 1, 1, 1, generator=gen)
    sharp_amount = torch.rand(n, 1, 1, 1, generator=gen) * 1.0
    is_blur = (choice < 0.25).float().view(n, 1, 1, 1)
    is_sharp = ((choice >= 0.25) & (choice < 0.5)).float().view(n, 1, 1, 1)
    image = image + is_blur * blur_amount * (blurred - image) + is_sharp * sharp_amount * (image - blurred)
    noise_level = torch.rand(n, 1, 1, 1, generator=gen) * 0.04 * strength
    image = image + noise_level * torch.randn(image.shape, generator=gen)
    return image.clamp(-1.2, 1.2), lungs, lesions


def mirror_samples(
    image: torch.Tensor, lungs: torch.Tensor, lesions: torch.Tensor, which: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror the samples ``which`` (N bool) left/right; their right and left lung labels swap.

    Other lung-head labels (the ignore value, "lung of either side") and the lesion labels move
    with the pixels unchanged.
    """
    if not which.any():
        return image, lungs, lesions
    from segmentation.result import LungLabel

    image, lungs, lesions = image.clone(), lungs.clone(), lesions.clone()
    image[which] = image[which].flip(-1)
    lesions[which] = lesions[which].flip(-1)
    flipped = lungs[which].flip(-1)
    right, left = flipped == LungLabel.RIGHT_LUNG, flipped == LungLabel.LEFT_LUNG
    flipped[right] = int(LungLabel.LEFT_LUNG)
    flipped[left] = int(LungLabel.RIGHT_LUNG)
    lungs[which] = flipped
    return image, lungs, lesions


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    kx = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    out = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kx, groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), ky, groups=c)


def _field_of_view(image, lungs, lesions, gen: torch.Generator, *, probability: float):
    """A reconstruction circle that cuts the body: outside it everything is padding air, nothing is lung."""
    n, _, h, w = image.shape
    use = torch.rand(n, generator=gen) < probability
    if not use.any():
        return image, lungs, lesions
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    for i in torch.nonzero(use).flatten().tolist():
        cy = h / 2 + (float(torch.rand(1, generator=gen)) * 2 - 1) * 0.1 * h
        cx = w / 2 + (float(torch.rand(1, generator=gen)) * 2 - 1) * 0.1 * w
        radius = (0.45 + 0.2 * float(torch.rand(1, generator=gen))) * max(h, w)
        outside = (yy - cy) ** 2 + (xx - cx) ** 2 > radius**2
        image[i, :, outside] = -1.0
        lungs[i, outside] = 0
        lesions[i, outside] = 0
    return image, lungs, lesions


def _air_pockets(image, lungs, gen: torch.Generator, *, probability: float):
    """Air that is not lung (bowel gas, air under a positioning device, oesophagus): ellipses placed off the lungs."""
    n, _, h, w = image.shape
    use = torch.rand(n, generator=gen) < probability
    if not use.any():
        return image
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    lung_near = F.max_pool2d((lungs > 0).float()[:, None], kernel_size=9, stride=1, padding=4)[:, 0] > 0
    for i in torch.nonzero(use).flatten().tolist():
        for _ in range(1 + int(torch.randint(3, (1,), generator=gen))):
            cy = float(torch.rand(1, generator=gen)) * h
            cx = float(torch.rand(1, generator=gen)) * w
            ay = 3 + float(torch.rand(1, generator=gen)) * 15
            ax = 3 + float(torch.rand(1, generator=gen)) * 15
            pocket = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1.0
            if (pocket & lung_near[i]).any():
                continue
            level = -0.97 + 0.05 * float(torch.rand(1, generator=gen))
            image[i, :, pocket] = level
    return image
