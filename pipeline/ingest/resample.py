"""The two repairs a plan may ask for: filling slice gaps, and undoing gantry tilt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.ingest.plan import Interpolation, VolumePlan


def fill_gaps(stack: np.ndarray, interpolation: Sequence[Interpolation]) -> np.ndarray:
    """Resample a ``(slices, rows, columns)`` HU stack to uniform steps along the stack.

    Output slices that sit on a source slice copy it exactly; the others are linear
    interpolations of their two neighbours, rounded to the nearest HU.
    """
    out = np.empty((len(interpolation), *stack.shape[1:]), dtype=stack.dtype)
    for index, item in enumerate(interpolation):
        if item.weight == 0.0:
            out[index] = stack[item.lower]
        else:
            mixed = (1.0 - item.weight) * stack[item.lower].astype(np.float64) + item.weight * stack[item.upper]
            out[index] = np.rint(mixed)
    return out


def correct_tilt(stack: np.ndarray, plan: VolumePlan, *, padding_hu: int) -> np.ndarray:
    """Resample a sheared (gantry-tilted) HU stack onto the plan's axial grid (trilinear).

    The source voxel ``(i, j, k)`` lies at ``source_origin + i*sx*row + j*sy*col + k*step*stack``
    (the axes are not orthogonal); output voxels that no source slice covers get ``padding_hu``.
    Returns an int16 array ``(z, y, x)`` of the plan's size.
    """
    import SimpleITK as sitk

    row, col, along = (np.asarray(plan.source_axes[i : i + 3]) for i in (0, 3, 6))
    sx, sy, step = plan.source_spacing
    to_physical = np.column_stack([sx * row, sy * col, step * along])
    to_index = np.linalg.inv(to_physical)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in to_index.ravel()))
    transform.SetTranslation(tuple(float(v) for v in -(to_index @ np.asarray(plan.source_origin))))

    source = sitk.GetImageFromArray(stack.astype(np.float32))  # index space: unit spacing, identity direction
    resampled = sitk.Resample(
        source,
        list(plan.size),
        transform,
        sitk.sitkLinear,
        list(plan.origin),
        list(plan.spacing),
        list(plan.direction),
        float(padding_hu),
        sitk.sitkFloat32,
    )
    return np.rint(sitk.GetArrayFromImage(resampled)).astype(np.int16)
