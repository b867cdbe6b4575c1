"""HU calibration check without a body model: where do air and soft tissue peak outside the lungs?

Sampling
--------
Every ``sample_stride``-th slice (counted from the feet, see :func:`metrics.scan.measure_scan`)
is cut into ``sample_stride`` x ``sample_stride`` in-plane
blocks; each block that holds no lung or lesion voxel contributes its mean HU (rounded).
Averaging blocks suppresses reconstruction noise: with a sharp (lung) kernel the noise of
single voxels (SD ~100 HU) smears the soft-tissue peak into the fat peak, while block means
keep muscle/blood near +40 HU (measured on the real B70f series: single voxels gave a mode of
-55 HU, 3x3 block means +55 HU). Out-of-field-of-view padding (the ingestion stage writes one
fixed value there, ``hu.padding_hu``) would put a spike exactly at -1000 HU and make the air
check pass on any image, so the bin of the padding value is replaced by the mean of its two
neighbours.

Estimate
--------
For a reference tissue with expected value ``E`` and search half-width ``W``, the sampled
voxels with ``E - W <= HU <= E + W`` are histogrammed (one bin per HU). The histogram is
smoothed by a centred moving sum of ``smoothing_hu`` bins (integer arithmetic, so results
are exactly reproducible) and its mode is the estimate (on a plateau of equal sums, the bin with
the most voxels, then the lowest HU). Fewer than
``min_voxels`` sampled voxels in the window means the tissue was not found where it should
be, which is itself a calibration failure (e.g. a missing rescale intercept of -1024 moves air to about +24 HU).

* air: outside air, trachea and bowel gas peak at about -1000 HU;
* soft tissue: muscle, blood and heart peak at about +40 HU; fat (-100 HU) lies outside the
  default window, and contrast-enhanced blood (150-300 HU) is too small a volume to move the mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.settings import CalibrationSettings


@dataclass(frozen=True)
class PeakEstimate:
    """Mode of one reference tissue, or ``None`` with the sample count when it was not found."""

    mode_hu: int | None
    n_voxels: int
    expected_hu: int
    tolerance_hu: int

    @property
    def off(self) -> bool:
        """True when the tissue was not found or peaks further than the tolerance from its expected HU."""
        return self.mode_hu is None or abs(self.mode_hu - self.expected_hu) > self.tolerance_hu


def sample_outside_lungs(
    hu: np.ndarray, lungs: np.ndarray, lesions: np.ndarray, *, stride: int
) -> tuple[np.ndarray, int]:
    """Histogram of lung-free block means (see the module notes) over the int16 range: ``(counts, low)``."""
    nz = hu[::stride].shape[0]
    ny, nx = (hu.shape[1] // stride) * stride, (hu.shape[2] // stride) * stride
    blocks = (nz, ny // stride, stride, nx // stride, stride)
    means = hu[::stride, :ny, :nx].reshape(blocks).mean(axis=(2, 4), dtype=np.float64)
    inside = ((lungs[::stride, :ny, :nx] != 0) | (lesions[::stride, :ny, :nx] != 0)).reshape(blocks).any(axis=(2, 4))
    low = -32768
    codes = np.clip(np.rint(means[~inside]), low, 32767).astype(np.intp) - low
    counts = np.bincount(codes, minlength=65536)
    return counts, low


def estimate_peak(
    counts: np.ndarray,
    low: int,
    *,
    expected_hu: int,
    half_width_hu: int,
    tolerance_hu: int,
    smoothing_hu: int,
    min_voxels: int,
    padding_hu: int | None,
) -> PeakEstimate:
    """Smoothed histogram mode within ``expected_hu +- half_width_hu`` (see the module notes)."""
    first = expected_hu - half_width_hu - low
    last = expected_hu + half_width_hu - low
    window = counts[first : last + 1].astype(np.int64).copy()
    if padding_hu is not None and first <= padding_hu - low <= last:
        i = padding_hu - low - first
        neighbours = [window[j] for j in (i - 1, i + 1) if 0 <= j < window.size]
        window[i] = sum(neighbours) // len(neighbours) if neighbours else 0
    n = int(window.sum())
    if n < min_voxels:
        return PeakEstimate(None, n, expected_hu, tolerance_hu)
    half = smoothing_hu // 2
    padded = np.concatenate((np.zeros(half + 1, np.int64), window, np.zeros(half, np.int64)))
    cumulative = np.cumsum(padded)
    moving = cumulative[smoothing_hu:] - cumulative[:-smoothing_hu]
    tied = np.flatnonzero(moving == moving.max())
    best = int(tied[np.argmax(window[tied])])  # plateau of the moving sum: the highest raw bin, then the lowest HU
    mode = expected_hu - half_width_hu + best
    return PeakEstimate(mode, n, expected_hu, tolerance_hu)


def check_calibration(
    hu: np.ndarray,
    lungs: np.ndarray,
    lesions: np.ndarray,
    *,
    settings: CalibrationSettings,
    padding_hu: int | None,
) -> tuple[PeakEstimate, PeakEstimate]:
    """Air and soft-tissue peak estimates of one volume: ``(air, soft_tissue)``."""
    counts, low = sample_outside_lungs(hu, lungs, lesions, stride=settings.sample_stride)
    common = {"smoothing_hu": settings.smoothing_hu, "min_voxels": settings.min_voxels, "padding_hu": padding_hu}
    air = estimate_peak(
        counts,
        low,
        expected_hu=settings.air_expected_hu,
        half_width_hu=settings.air_search_half_width_hu,
        tolerance_hu=settings.air_tolerance_hu,
        **common,
    )
    tissue = estimate_peak(
        counts,
        low,
        expected_hu=settings.soft_tissue_expected_hu,
        half_width_hu=settings.soft_tissue_search_half_width_hu,
        tolerance_hu=settings.soft_tissue_tolerance_hu,
        **common,
    )
    return air, tissue
