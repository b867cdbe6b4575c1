"""Density statistics from exact integer HU histograms.

All statistics are computed from a histogram of integer HU values (one bin per HU), which is
exact for integer CT values and lets one pass over the volume serve every region.

* mean: ``sum(v * count(v)) / n``; SD: population standard deviation (``ddof = 0``);
* percentile ``q``: the smallest HU ``v`` with ``count(HU <= v) >= ceil(q * n / 100)``
  (the "inverted CDF" definition, ``numpy.percentile(..., method="inverted_cdf")``), so it is
  always a measured HU value;
* HU bands: half-open intervals, lower edge included, upper edge excluded (HU are integers,
  so ``< -950`` means ``<= -951``) -- see :data:`HU_BANDS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class HUBand(StrEnum):
    """Standard lung attenuation bands of quantitative CT, with their column-name stem."""

    EMPHYSEMA_LIKE = "emphysema_like"
    NORMALLY_AERATED = "normally_aerated"
    POORLY_AERATED = "poorly_aerated"
    NON_AERATED = "non_aerated"
    ABOVE_50HU = "above_50hu"

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        """``(lower included, upper excluded)`` in HU; ``None`` is unbounded."""
        return _BAND_BOUNDS[self]


_BAND_BOUNDS: dict[HUBand, tuple[int | None, int | None]] = {
    HUBand.EMPHYSEMA_LIKE: (None, -950),
    HUBand.NORMALLY_AERATED: (-950, -750),
    HUBand.POORLY_AERATED: (-750, -300),
    HUBand.NON_AERATED: (-300, 50),
    HUBand.ABOVE_50HU: (50, None),
}

HU_BANDS: tuple[HUBand, ...] = tuple(HUBand)
LUNG_PERCENTILES: tuple[int, ...] = (10, 50, 90)


@dataclass(frozen=True)
class HUHistogram:
    """Voxel counts per integer HU value, from ``low`` to ``low + len(counts) - 1``."""

    low: int
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def values(self) -> np.ndarray:
        return np.arange(self.low, self.low + self.counts.size, dtype=np.int64)

    def mean_sd(self) -> tuple[float | None, float | None]:
        """Mean and population SD in HU (``None`` for an empty region)."""
        n = self.n
        if n == 0:
            return None, None
        values = self.values
        counts = self.counts.astype(np.int64)
        mean = int(counts @ values) / n  # integer sum: exact
        centred = values.astype(np.float64) - mean
        variance = float(counts.astype(np.float64) @ (centred * centred)) / n
        return mean, math.sqrt(variance)

    def percentile(self, q: int) -> int | None:
        """Inverted-CDF percentile ``q`` (integer 0-100) in HU; ``None`` for an empty region."""
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must lie in [0, 100], got {q}")
        n = self.n
        if n == 0:
            return None
        rank = max(1, -(-q * n // 100))  # ceil(q * n / 100), at least the first value
        cumulative = np.cumsum(self.counts, dtype=np.int64)
        return int(self.low + np.searchsorted(cumulative, rank, side="left"))

    def band_counts(self) -> dict[HUBand, int]:
        """Voxels in each of :data:`HU_BANDS` (they partition the whole HU axis)."""
        cumulative = np.concatenate(([0], np.cumsum(self.counts, dtype=np.int64)))

        def below(edge: int | None, *, default: int) -> int:
            if edge is None:
                return default
            index = min(max(edge - self.low, 0), self.counts.size)
            return int(cumulative[index])

        total = int(cumulative[-1])
        return {band: below(band.bounds[1], default=total) - below(band.bounds[0], default=0) for band in HU_BANDS}


def histograms_by_class(values: np.ndarray, classes: np.ndarray, *, n_classes: int) -> list[HUHistogram]:
    """One HU histogram per class ``0 .. n_classes-1`` from paired value/class arrays.

    ``values`` are rounded to integers and clipped to the int16 range (CT values from the
    ingestion stage already are int16).
    """
    if values.size == 0:
        return [HUHistogram(0, np.zeros(1, dtype=np.int64)) for _ in range(n_classes)]
    if not np.issubdtype(values.dtype, np.integer):
        values = np.rint(values)
    if not (np.issubdtype(values.dtype, np.integer) and np.iinfo(values.dtype).bits <= 16):
        values = np.clip(values, -32768, 32767).astype(np.int32)
    low = int(values.min())
    width = int(values.max()) - low + 1
    codes = classes.astype(np.intp)
    codes *= width
    codes += values
    codes -= low
    counts = np.bincount(codes, minlength=n_classes * width).reshape(n_classes, width)
    return [HUHistogram(low, counts[c]) for c in range(n_classes)]


def merge(histograms: list[HUHistogram]) -> HUHistogram:
    """Sum histograms that share the same ``low`` and length (as from :func:`histograms_by_class`)."""
    first = histograms[0]
    total = np.zeros_like(first.counts)
    for hist in histograms:
        if hist.low != first.low or hist.counts.size != first.counts.size:
            raise ValueError("histograms to merge must share their HU range")
        total = total + hist.counts
    return HUHistogram(first.low, total)
