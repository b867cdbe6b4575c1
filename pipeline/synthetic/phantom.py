"""A small analytic chest phantom in HU with its lung and lesion labels.

Body (soft tissue) with a fat rim, two lungs, a spine, and optional ground-glass and
consolidation blobs inside the right lung; fixed-seed noise. Good for tests and the demo
cohort; not a substitute for real CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Label values match :class:`segmentation.result.LungLabel` / ``LesionLabel``.
RIGHT_LUNG, LEFT_LUNG = 1, 2
GGO, CONSOLIDATION = 1, 2


@dataclass(frozen=True)
class ChestPhantom:
    """HU volume ``(z, y, x)`` int16 and its label volumes (uint8, same shape)."""

    hu: np.ndarray
    lungs: np.ndarray
    """0 background, 1 right lung (patient's right = image left in LPS x), 2 left lung."""
    lesions: np.ndarray
    """0 none, 1 ground-glass opacity, 2 consolidation (always inside the lungs)."""


def _ellipsoid(grid: tuple[np.ndarray, ...], centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def chest_phantom(
    shape: tuple[int, int, int] = (24, 48, 48),
    *,
    ggo: bool = False,
    consolidation: bool = False,
    noise_hu: float = 0.0,
    seed: int = 0,
) -> ChestPhantom:
    """Build the phantom on a ``shape = (slices, rows, columns)`` grid (geometry-free: voxel units).

    Parameters
    ----------
    ggo, consolidation
        Add a ground-glass blob (-600 HU) / a consolidation blob (+30 HU) in the right lung.
    noise_hu
        Standard deviation of Gaussian noise added to the body (0: exact piecewise-constant values).
    seed
        Seeds the noise.
    """
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    grid = (z / max(nz - 1, 1), y / max(ny - 1, 1), x / max(nx - 1, 1))
    hu = np.full(shape, -1000, dtype=np.float64)
    body = _ellipsoid(grid[1:], (0.5, 0.5), (0.42, 0.47))
    inner = _ellipsoid(grid[1:], (0.5, 0.5), (0.38, 0.43))
    hu[body] = -100  # fat rim
    hu[inner] = 40  # soft tissue
    lungs = np.zeros(shape, dtype=np.uint8)
    z_span = (grid[0] > 0.08) & (grid[0] < 0.92)
    right = _ellipsoid(grid[1:], (0.48, 0.3), (0.28, 0.15)) & z_span
    left = _ellipsoid(grid[1:], (0.48, 0.7), (0.28, 0.15)) & z_span
    lungs[right] = RIGHT_LUNG
    lungs[left] = LEFT_LUNG
    hu[lungs > 0] = -850
    spine = _ellipsoid(grid[1:], (0.82, 0.5), (0.07, 0.07))
    hu[spine] = 700

    lesions = np.zeros(shape, dtype=np.uint8)
    if ggo:
        blob = _ellipsoid(grid, (0.4, 0.45, 0.3), (0.15, 0.1, 0.07)) & (lungs == RIGHT_LUNG)
        lesions[blob] = GGO
        hu[blob] = -600
    if consolidation:
        blob = _ellipsoid(grid, (0.65, 0.55, 0.3), (0.12, 0.08, 0.06)) & (lungs == RIGHT_LUNG) & (lesions == 0)
        lesions[blob] = CONSOLIDATION
        hu[blob] = 30
    if noise_hu > 0:
        rng = np.random.default_rng(seed)
        hu[body] += rng.normal(0.0, noise_hu, size=int(body.sum()))
    return ChestPhantom(hu=np.rint(hu).clip(-1024, 3071).astype(np.int16), lungs=lungs, lesions=lesions)
