"""Stored pixel values to Hounsfield units (the modality LUT), with padding and clipping.

HU = stored x RescaleSlope + RescaleIntercept, per slice. Pixels equal to PixelPaddingValue
(or inside PixelPaddingValue..PixelPaddingRangeLimit) and values below
``hu.out_of_fov_below_hu`` (outside the reconstruction circle: GE -3024, Siemens -2048) become
``hu.padding_hu`` (air); values above ``hu.clip_max_hu`` are clipped. The result fits int16.
"""

from __future__ import annotations

import numpy as np

from pipeline.ingest.settings import HUSettings


def stored_to_hu(
    stored: np.ndarray,
    *,
    slope: float,
    intercept: float,
    padding_value: int | None,
    padding_range_limit: int | None,
    hu: HUSettings,
    out: np.ndarray,
) -> int:
    """Write the HU of one slice (or frame stack) of stored values into ``out`` (int16).

    Parameters
    ----------
    stored
        Stored values as decoded (any integer or float dtype).
    slope, intercept
        RescaleSlope and RescaleIntercept of this slice.
    padding_value, padding_range_limit
        PixelPaddingValue (and PixelPaddingRangeLimit) in stored units, or ``None``.
    hu
        Padding value, out-of-field threshold and upper clip.
    out
        int16 array of the same shape, written in place.

    Returns
    -------
    int
        How many pixels were set to ``hu.padding_hu`` (padding or outside the field of view).
    """
    padding = None
    if padding_value is not None:
        if padding_range_limit is None:
            padding = stored == padding_value
        else:
            low, high = sorted((padding_value, padding_range_limit))
            padding = (stored >= low) & (stored <= high)

    if slope == 1.0 and float(intercept).is_integer() and stored.dtype.kind in "iub" and stored.dtype.itemsize <= 2:
        values = stored.astype(np.int32)
        values += int(intercept)
    else:
        scaled = np.rint(stored.astype(np.float64) * slope + intercept)
        np.clip(scaled, -(2**31), 2**31 - 1, out=scaled)
        values = scaled.astype(np.int32)

    outside = values < hu.out_of_fov_below_hu
    if padding is not None:
        outside |= padding
    np.minimum(values, hu.clip_max_hu, out=values)
    values[outside] = hu.padding_hu
    out[...] = values
    return int(np.count_nonzero(outside))


def hu_from_volume(values: np.ndarray, *, hu: HUSettings) -> tuple[np.ndarray, int]:
    """HU already (volume files): round, map below-field values to padding, clip; int16 result."""
    if values.dtype.kind == "f":
        work = np.rint(np.nan_to_num(values, nan=hu.padding_hu)).clip(-(2**31), 2**31 - 1).astype(np.int32)
    else:
        work = values.astype(np.int32)
    out = np.empty(values.shape, dtype=np.int16)
    mapped = stored_to_hu(work, slope=1.0, intercept=0.0, padding_value=None, padding_range_limit=None, hu=hu, out=out)
    return out, mapped
