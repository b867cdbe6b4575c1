"""A small synthetic thorax phantom with exact lung labels (tests and examples).

Body ellipse (soft tissue and a fat layer), spine, heart, two lungs (aerated parenchyma
with noise and a few vessels), a trachea that splits into two main bronchi at the carina,
and a couch below the body. Arrays are canonical (axis 0 inferior->superior, axis 1
anterior->posterior, axis 2 patient right->left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from segmentation.result import LungLabel


@dataclass
class Phantom:
    hu: np.ndarray
    lungs: np.ndarray
    airway: np.ndarray
    spacing_zyx: tuple[float, float, float]

    def image(self) -> sitk.Image:
        """The phantom as an int16 SimpleITK image (identity direction = canonical LPS)."""
        image = sitk.GetImageFromArray(np.rint(self.hu).astype(np.int16))
        image.SetSpacing(tuple(float(s) for s in self.spacing_zyx[::-1]))
        return image

    def lung_image(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.lungs.astype(np.uint8))
        image.SetSpacing(tuple(float(s) for s in self.spacing_zyx[::-1]))
        return image


def make_phantom(
    *,
    shape: tuple[int, int, int] = (40, 128, 160),
    spacing_zyx: tuple[float, float, float] = (5.0, 2.5, 2.5),
    touching: bool = False,
    seed: int = 0,
) -> Phantom:
    """Build a phantom; ``touching`` makes the lungs meet at an anterior junction line."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    sz, sy, sx = spacing_zyx
    z = (np.arange(nz) * sz)[:, None, None]
    y = ((np.arange(ny) - ny / 2) * sy)[None, :, None]
    x = ((np.arange(nx) - nx / 2) * sx)[None, None, :]
    height = nz * sz
    hu = np.full(shape, -1000.0, np.float32)
    body_a, body_b = 0.42 * nx * sx, 0.36 * ny * sy
    body = (x / body_a) ** 2 + (y / body_b) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = -100.0  # fat
    inner = np.broadcast_to((x / (body_a - 12)) ** 2 + (y / (body_b - 12)) ** 2 <= 1.0, shape)
    hu[inner] = 40.0  # muscle / mediastinum
    # Couch: a thin dense plate below the body.
    couch_y = int(ny / 2 + body_b / sy + 6)
    if couch_y + 2 < ny:
        hu[:, couch_y : couch_y + 2, int(nx * 0.1) : int(nx * 0.9)] = 300.0
    # Lungs: half-ellipsoids narrowing to the apex, above a diaphragm dome.
    base = 0.12 * height
    apex = 0.92 * height
    t = np.clip((z - base) / (apex - base), 0, 1)
    width = np.where((z >= base) & (z <= apex), np.sqrt(np.clip(1 - t**2, 0, 1)), 0.0)
    gap = 0.0 if touching else 9.0
    lung_a = 0.5 * (body_a - 14) - gap / 2
    lung_b = body_b - 16
    cx = gap / 2 + lung_a
    right = ((x + cx) / (lung_a * width + 1e-6)) ** 2 + ((y + 4) / (lung_b * width + 1e-6)) ** 2 <= 1.0
    left = ((x - cx) / (lung_a * width + 1e-6)) ** 2 + ((y + 4) / (lung_b * width + 1e-6)) ** 2 <= 1.0
    # Heart notch in the left lung, spine between the lungs posteriorly.
    heart = ((x - 18) / 45.0) ** 2 + ((y + 10) / 40.0) ** 2 + ((z - 0.35 * height) / (0.25 * height)) ** 2 <= 1.0
    spine = (x / 14.0) ** 2 + ((y - (body_b - 28)) / 14.0) ** 2 <= 1.0
    spine = np.broadcast_to(spine, shape)
    chest = (x / (body_a - 20)) ** 2 + (y / (body_b - 20)) ** 2 <= 1.0  # ribs and muscle stay around the lungs
    left &= ~heart & chest
    right &= ~heart & chest
    lungs = np.zeros(shape, np.uint8)
    lungs[right & ~spine] = LungLabel.RIGHT_LUNG
    lungs[left & ~spine & (lungs == 0)] = LungLabel.LEFT_LUNG
    hu[lungs > 0] = -860.0 + rng.normal(0.0, 25.0, int((lungs > 0).sum())).astype(np.float32)
    hu[np.broadcast_to(heart, shape)] = 40.0
    hu[spine] = 600.0
    # Vessels: a few straight soft-tissue rods inside the lungs (they stay lung).
    for _ in range(12):
        side = 1 if rng.random() < 0.5 else -1
        x0 = side * cx + rng.uniform(-0.5, 0.5) * lung_a
        y0 = rng.uniform(-0.4, 0.3) * lung_b
        rod = ((x - x0) ** 2 + (y - y0) ** 2) <= 2.0**2
        rod = np.broadcast_to(rod, shape) & (lungs > 0)
        hu[rod] = 30.0
    # Trachea from the top to the carina, then two main bronchi that end at the hilum.
    carina = 0.62 * height
    airway = np.zeros(shape, bool)
    trachea = (x**2 + (y + 12) ** 2 <= 7.0**2) & (z >= carina)
    airway |= np.broadcast_to(trachea, shape)
    for side in (-1, 1):
        frac = np.clip((carina - z) / 25.0, 0, 1)
        bx = side * (frac * 0.55 * cx)
        bronchus = ((x - bx) ** 2 + (y + 12) ** 2 <= 5.0**2) & (z < carina) & (z >= carina - 25.0)
        airway |= np.broadcast_to(bronchus, shape) & ~(lungs > 0)
    hu[airway] = -1000.0 + rng.normal(0, 10, int(airway.sum())).astype(np.float32)
    lungs[airway] = 0
    hu[~body] = -1000.0 + rng.normal(0, 10, int((~body).sum())).astype(np.float32)
    return Phantom(hu=hu, lungs=lungs, airway=airway, spacing_zyx=spacing_zyx)
