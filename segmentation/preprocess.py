"""From a canonical HU array to the network's working grid (and the grid's geometry).

The working grid covers the body's bounding box (found on a strided copy of the volume)
at a fixed spacing given by the model's preprocessing parameters, padded so that its
in-plane size divides the network's stride. The input is resampled with the anti-aliased
separable kernel of :mod:`segmentation.grid`, in blocks of working slices so that memory
stays bounded for volumes of any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from segmentation.grid import AxisMap, downsample_taps, resample_axis


@dataclass(frozen=True)
class PreprocessParameters:
    """How a CT is turned into network input; stored with the weights (``preprocessing`` in the JSON)."""

    spacing_zyx_mm: tuple[float, float, float]
    """Working voxel spacing (mm) along the canonical axes (z, y, x)."""
    hu_min: float
    """HU clipped below (air); the lower end of the normalised range (-1)."""
    hu_max: float
    """HU clipped above; the upper end of the normalised range (+1)."""
    body_threshold_hu: float
    """Voxels above this HU are body when the field of view is cropped."""
    body_margin_mm: float
    """Margin kept around the body's bounding box."""
    size_multiple: int
    """The working in-plane size is padded to a multiple of this (the network's total stride)."""
    context_offsets: tuple[int, ...]
    """Working slices fed as input channels around each slice (2.5-D context), e.g. (-2, -1, 0, 1, 2)."""

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessParameters:
        return cls(
            spacing_zyx_mm=tuple(float(v) for v in data["spacing_zyx_mm"]),  # type: ignore[arg-type]
            hu_min=float(data["hu_min"]),
            hu_max=float(data["hu_max"]),
            body_threshold_hu=float(data["body_threshold_hu"]),
            body_margin_mm=float(data["body_margin_mm"]),
            size_multiple=int(data["size_multiple"]),
            context_offsets=tuple(int(v) for v in data["context_offsets"]),
        )

    def to_dict(self) -> dict:
        return {
            "spacing_zyx_mm": [float(v) for v in self.spacing_zyx_mm],
            "hu_min": float(self.hu_min),
            "hu_max": float(self.hu_max),
            "body_threshold_hu": float(self.body_threshold_hu),
            "body_margin_mm": float(self.body_margin_mm),
            "size_multiple": int(self.size_multiple),
            "context_offsets": [int(v) for v in self.context_offsets],
        }

    def normalise(self, hu):
        """HU (already clipped) -> [-1, 1] (works on numpy arrays and torch tensors)."""
        centre = 0.5 * (self.hu_max + self.hu_min)
        half = 0.5 * (self.hu_max - self.hu_min)
        return (hu - centre) / half


@dataclass(frozen=True)
class WorkingGrid:
    """Where the working grid lies in the canonical input array.

    ``z``, ``y``, ``x`` map working voxels onto input voxels; the working array has
    ``pad_y``/``pad_x`` extra voxels (before, after) so its in-plane size divides the stride.
    """

    input_shape: tuple[int, int, int]
    z: AxisMap
    y: AxisMap
    x: AxisMap
    pad_y: tuple[int, int]
    pad_x: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the padded working array."""
        return (
            self.z.size,
            self.y.size + self.pad_y[0] + self.pad_y[1],
            self.x.size + self.pad_x[0] + self.pad_x[1],
        )

    def unpadded(self) -> tuple[slice, slice, slice]:
        """Index of the working array without padding."""
        return (
            slice(None),
            slice(self.pad_y[0], self.pad_y[0] + self.y.size),
            slice(self.pad_x[0], self.pad_x[0] + self.x.size),
        )


BODY_PART_FRACTION = 0.05
"""Parts of the body's projection at least this fraction of the largest part are inside the crop."""


def body_box(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], *, threshold_hu: float, margin_mm: float
) -> tuple[slice, slice]:
    """In-plane bounding box (rows, columns) of the body, from a strided copy of the volume.

    The body is what lies above ``threshold_hu`` on more than a tenth of the (strided) slices,
    opened once to drop specks and thin lines. Every part of it at least
    :data:`BODY_PART_FRACTION` of the largest is kept: where an image is cropped so close that
    the chest wall falls apart into pieces, the largest piece (the mediastinum and spine) would
    end the crop inside a lung. On full-field chest CT the other parts measured here are specks
    under 1 % of the body (cables, the table edge), which stay out.
    """
    step_z = max(1, int(round(6.0 / spacing_zyx[0])))
    step = max(1, int(round(3.0 / min(spacing_zyx[1:]))))
    sample = hu[::step_z, ::step, ::step]
    projection = (sample > threshold_hu).mean(axis=0) > 0.1
    projection = ndi.binary_opening(projection, iterations=1)
    labels, n = ndi.label(projection)
    shape = hu.shape
    if n == 0:
        return slice(0, shape[1]), slice(0, shape[2])
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = np.isin(labels, np.flatnonzero(sizes >= BODY_PART_FRACTION * sizes.max()))
    rows = np.flatnonzero(body.any(axis=1))
    cols = np.flatnonzero(body.any(axis=0))
    my = int(np.ceil(margin_mm / spacing_zyx[1]))
    mx = int(np.ceil(margin_mm / spacing_zyx[2]))
    y0 = max(0, rows[0] * step - my)
    y1 = min(shape[1], (rows[-1] + 1) * step + my)
    x0 = max(0, cols[0] * step - mx)
    x1 = min(shape[2], (cols[-1] + 1) * step + mx)
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def working_grid(hu: np.ndarray, spacing_zyx: tuple[float, float, float], params: PreprocessParameters) -> WorkingGrid:
    """The working grid of a canonical HU array (body crop, target spacing, stride padding)."""
    rows, cols = body_box(hu, spacing_zyx, threshold_hu=params.body_threshold_hu, margin_mm=params.body_margin_mm)
    wz, wy, wx = params.spacing_zyx_mm
    z = AxisMap.tiling(start=0, length=hu.shape[0], spacing=spacing_zyx[0], target_spacing=wz)
    y = AxisMap.tiling(start=rows.start, length=rows.stop - rows.start, spacing=spacing_zyx[1], target_spacing=wy)
    x = AxisMap.tiling(start=cols.start, length=cols.stop - cols.start, spacing=spacing_zyx[2], target_spacing=wx)
    m = params.size_multiple

    def pad(n: int) -> tuple[int, int]:
        extra = (-n) % m
        return extra // 2, extra - extra // 2

    return WorkingGrid(tuple(hu.shape), z, y, x, pad(y.size), pad(x.size))  # type: ignore[arg-type]


def resample_to_working(
    volume: np.ndarray,
    grid: WorkingGrid,
    *,
    fill: float,
    block: int = 32,
    max_input_slices: int = 64,
    dtype=np.float32,
    z_taps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Resample a canonical array (any numeric dtype) onto the padded working grid.

    Works in blocks of at most ``block`` working slices that read at most ``max_input_slices``
    input slices (at least one working slice per block), so the float32 temporaries stay the
    same size whatever the slice spacing: a 0.3 mm series reads about 8 input slices per
    working slice. Padding is filled with ``fill``. ``z_taps`` replaces the z taps of ``grid``
    (to resample a volume whose slices differ from the ones the grid was built on, e.g.
    reference labels on the native grid of a simulated series).
    """
    import torch

    out = np.full(grid.shape, fill, dtype=dtype)
    z_index, z_weight = z_taps if z_taps is not None else downsample_taps(grid.z, volume.shape[0])
    import torch.nn.functional as F

    inner = grid.unpadded()
    rows = slice(grid.y.start, grid.y.start + grid.y.length)
    cols = slice(grid.x.start, grid.x.start + grid.x.length)
    for z0, z1 in working_blocks(z_index, block=block, max_input_slices=max_input_slices):
        zi = z_index[z0:z1]
        lo, hi = int(zi.min()), int(zi.max()) + 1
        chunk = torch.from_numpy(np.ascontiguousarray(volume[lo:hi, rows, cols], dtype=np.float32))
        chunk = resample_axis(chunk, 0, zi - lo, z_weight[z0:z1])
        # In-plane: PyTorch's anti-aliased bilinear resize uses exactly the triangle kernel of
        # grid.axis_taps (half width = ratio, centre-aligned) and is an order of magnitude faster.
        chunk = F.interpolate(
            chunk[:, None], size=(grid.y.size, grid.x.size), mode="bilinear", antialias=True, align_corners=False
        )[:, 0]
        out[z0:z1, inner[1], inner[2]] = chunk.numpy().astype(dtype, copy=False)
    return out


def working_blocks(z_index: np.ndarray, *, block: int, max_input_slices: int):
    """``(z0, z1)`` working-slice ranges: at most ``block`` slices, reading at most ``max_input_slices``."""
    first = z_index.min(axis=1)
    last = z_index.max(axis=1)
    z0, n = 0, z_index.shape[0]
    while z0 < n:
        z1 = z0 + 1
        while z1 < min(n, z0 + block) and last[z0 : z1 + 1].max() - first[z0 : z1 + 1].min() < max_input_slices:
            z1 += 1
        yield z0, z1
        z0 = z1


def to_working(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], params: PreprocessParameters
) -> tuple[np.ndarray, WorkingGrid]:
    """Network input volume (normalised to [-1, 1], float32) on the working grid, and the grid."""
    grid = working_grid(hu, spacing_zyx, params)
    clipped = _ClippedView(hu, params.hu_min, params.hu_max)
    working = resample_to_working(clipped, grid, fill=params.hu_min)
    return params.normalise(working).astype(np.float32, copy=False), grid


class _ClippedView:
    """Array-like that clips HU lazily, block by block (no full-size float copy of the input)."""

    def __init__(self, array: np.ndarray, lo: float, hi: float) -> None:
        self.array, self.lo, self.hi = array, lo, hi
        self.shape = array.shape

    def __getitem__(self, index):
        return np.clip(self.array[index], self.lo, self.hi)


def context_stack(working: np.ndarray, centres: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
    """Network input for working slices ``centres``: (N, len(offsets), H, W), edges replicated."""
    idx = np.clip(centres[:, None] + np.asarray(offsets)[None, :], 0, working.shape[0] - 1)
    return working[idx]
