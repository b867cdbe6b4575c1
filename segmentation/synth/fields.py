"""Smooth random fields on a voxel grid (the raw material of lesion shapes and textures)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def smooth_field(
    shape: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    *,
    correlation_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Gaussian random field with unit standard deviation and a correlation length in mm.

    White noise on a coarse grid (spacing ``correlation_mm / 3``) is Gaussian-filtered and
    trilinearly interpolated onto ``shape``: cost is independent of the correlation length.
    """
    import torch
    import torch.nn.functional as F

    coarse_mm = max(correlation_mm / 3.0, min(spacing_zyx))
    extent = [n * s for n, s in zip(shape, spacing_zyx, strict=True)]
    coarse_shape = [max(2, int(np.ceil(e / coarse_mm)) + 3) for e in extent]
    noise = rng.standard_normal(coarse_shape).astype(np.float32)
    noise = ndi.gaussian_filter(noise, sigma=correlation_mm / coarse_mm / 2.0, mode="wrap")
    noise /= max(float(noise.std()), 1e-6)
    tensor = torch.from_numpy(noise)[None, None]
    # Crop the coarse grid so that it spans exactly the extent (plus interpolation margin).
    up = F.interpolate(tensor, size=tuple(shape), mode="trilinear", align_corners=False)
    return up[0, 0].numpy()


def band_lines(field: np.ndarray, width: float) -> np.ndarray:
    """Soft thin sheets/lines where a zero-mean field crosses zero: exp(-(f / width)^2)."""
    return np.exp(-np.square(field / width)).astype(np.float32)
