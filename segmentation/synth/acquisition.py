"""Simulated acquisition: reconstruction kernel (sharpness, noise) and slice thickness.

Applied to a lesioned volume on its native grid, so lesions are blurred by the slice profile
exactly like the anatomy around them. Thick slices are a triangle-weighted average along z
(full width at half maximum = the thickness) sampled every ``thickness_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from segmentation.grid import axis_taps


@dataclass(frozen=True)
class Acquisition:
    """One simulated series: thickness (= spacing) and in-plane kernel character."""

    thickness_mm: float
    """Slice thickness and spacing; at or below the native spacing the native slices are kept."""
    smooth_mm: float
    """Gaussian sigma of a soft kernel (0: none)."""
    sharpen: float
    """Unsharp-mask gain of a sharp kernel (0: none)."""
    noise_hu: float
    """Standard deviation of added, spatially correlated noise."""
    noise_mm: float
    """Correlation (Gaussian sigma) of that noise."""
    z_offset: float = 0.0
    """Where the first thick slice starts, as a fraction of the thickness."""
    seed: int = 0

    def describe(self) -> str:
        return f"{self.thickness_mm:g}mm smooth{self.smooth_mm:.1f} sharp{self.sharpen:.1f} noise{self.noise_hu:.0f}"


def sample_acquisition(rng: np.random.Generator, native_spacing_z: float) -> Acquisition:
    """A random acquisition: soft to very sharp kernels, native to 8 mm slices."""
    thickness = float(rng.choice([native_spacing_z, 3.0, 5.0, 8.0], p=[0.4, 0.2, 0.25, 0.15]))
    kernel = rng.random()
    if kernel < 0.3:  # soft kernel
        smooth, sharpen, noise = rng.uniform(0.3, 0.9), 0.0, rng.uniform(0, 20)
    elif kernel < 0.6:  # as reconstructed
        smooth, sharpen, noise = 0.0, 0.0, rng.uniform(0, 30)
    else:  # sharp (lung, B60-B70-like) kernel
        smooth, sharpen, noise = 0.0, rng.uniform(0.3, 1.5), rng.uniform(20, 90)
    return Acquisition(
        thickness_mm=max(thickness, native_spacing_z),
        smooth_mm=float(smooth),
        sharpen=float(sharpen),
        noise_hu=float(noise),
        noise_mm=float(rng.uniform(0.3, 0.7)),
        z_offset=float(rng.random()),
        seed=int(rng.integers(2**31)),
    )


def thick_slice_taps(n_native: int, spacing_z: float, acq: Acquisition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Native-slice taps of every simulated slice and the slices' positions (native index units)."""
    ratio = acq.thickness_mm / spacing_z
    if ratio <= 1.0 + 1e-6:
        positions = np.arange(n_native, dtype=float)
        index = positions.astype(np.int64)[:, None]
        return index, np.ones((n_native, 1), np.float32), positions
    first = acq.z_offset * ratio
    positions = np.arange(first, n_native - 1 + 1e-6, ratio)
    if positions.size == 0:
        positions = np.array([0.5 * (n_native - 1)])
    index, weight = axis_taps(n_native, positions, half_width=ratio)
    return index, weight, positions


def simulate(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], acq: Acquisition
) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """Apply ``acq`` to a canonical HU volume.

    Returns
    -------
    volume, spacing, positions
        The simulated series (float32), its spacing, and the z position of each of its
        slices in native index units (to resample reference labels onto it).
    """
    rng = np.random.default_rng(acq.seed)
    out = np.asarray(hu, dtype=np.float32)
    sy, sx = spacing_zyx[1:]
    if acq.smooth_mm > 0:
        out = ndi.gaussian_filter(out, sigma=(0, acq.smooth_mm / sy, acq.smooth_mm / sx))
    if acq.sharpen > 0:
        blurred = ndi.gaussian_filter(out, sigma=(0, 1.0 / sy, 1.0 / sx))
        out = out + acq.sharpen * (out - blurred)
    index, weight, positions = thick_slice_taps(out.shape[0], spacing_zyx[0], acq)
    if index.shape[1] > 1 or index.shape[0] != out.shape[0]:
        thick = np.zeros((positions.size,) + out.shape[1:], np.float32)
        for tap in range(index.shape[1]):
            thick += weight[:, tap, None, None] * out[index[:, tap]]
        out = thick
    if acq.noise_hu > 0:
        noise = rng.standard_normal(out.shape).astype(np.float32)
        noise = ndi.gaussian_filter(noise, sigma=(0, acq.noise_mm / sy, acq.noise_mm / sx))
        noise *= acq.noise_hu / max(float(noise.std()), 1e-6)
        out = out + noise
    spacing = (max(acq.thickness_mm, spacing_zyx[0]), sy, sx)
    return np.clip(out, -1024.0, 3071.0), spacing, positions
