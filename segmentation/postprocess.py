"""Post-processing: clean the network's probabilities on the working grid, then bring labels to the input grid.

On the working grid (cheap): keep the lung components that matter, give each lung one
connected side (islands of the wrong side are relabelled), fill each lung's holes slice by
slice, and write these decisions back into the probability fields (removed voxels get 0,
filled voxels 1). On the input grid: the four fields (lung, right-vs-left, lesion,
consolidation-vs-GGO) are linearly interpolated inside the lungs' bounding box only, in
blocks of slices, and thresholded; lesions are then intersected with the lungs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from segmentation.classical import fill_holes_per_slice
from segmentation.grid import upsample_taps
from segmentation.preprocess import WorkingGrid
from segmentation.result import LesionLabel, LungLabel


@dataclass
class WorkingFields:
    """Probability-derived fields on the unpadded working grid, all float32 (Z, H, W)."""

    lung: np.ndarray
    """P(lung) = P(right) + P(left); lung where > 0.5."""
    side: np.ndarray
    """P(right) - P(left); right lung where > 0."""
    lesion: np.ndarray
    """P(GGO) + P(consolidation); lesion where > 0.5."""
    consolidation: np.ndarray
    """P(consolidation) - P(GGO); consolidation where > 0."""

    @classmethod
    def from_probabilities(cls, lung_prob: np.ndarray, lesion_prob: np.ndarray) -> WorkingFields:
        """From softmax outputs (Z, 3, H, W) of the two heads."""
        return cls(
            lung=lung_prob[:, 1] + lung_prob[:, 2],
            side=lung_prob[:, 1] - lung_prob[:, 2],
            lesion=lesion_prob[:, 1] + lesion_prob[:, 2],
            consolidation=lesion_prob[:, 2] - lesion_prob[:, 1],
        )


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, n = ndi.label(mask, structure=ndi.generate_binary_structure(3, 2))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


def outside_air(working: np.ndarray, *, threshold: float) -> np.ndarray:
    """Air connected to the edge of each working slice through air (outside the body, never lung).

    ``working`` is the (unpadded) network input and ``threshold`` the normalised intensity
    below which a voxel is air. A lung cut by the edge of the field of view would count as
    outside too; chest CT fields of view include the lungs.
    """
    out = np.zeros(working.shape, bool)
    for z in range(working.shape[0]):
        air = working[z] < threshold
        labels, n = ndi.label(air)
        if n == 0:
            continue
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        edge = edge[edge > 0]
        if edge.size:
            out[z] = np.isin(labels, edge)
    return out


def clean_lungs(
    fields: WorkingFields, *, min_component_fraction: float, outside: np.ndarray | None = None
) -> np.ndarray:
    """Clean the lung fields in place; return the working-grid lung labels (uint8 :class:`LungLabel`).

    Parameters
    ----------
    fields
        Working fields; ``lung`` and ``side`` are modified so that interpolating them
        reproduces the cleaned decision.
    min_component_fraction
        Lung components smaller than this fraction of the largest are removed.
    outside
        Voxels that cannot be lung (air outside the body, see :func:`outside_air`).
    """
    if outside is not None:
        fields.lung[outside] = 0.0
    mask = fields.lung > 0.5
    labels, sizes = _components(mask)
    keep = np.zeros(mask.shape, bool)
    if sizes.max(initial=0) > 0:
        kept = np.flatnonzero(sizes >= min_component_fraction * sizes.max())
        keep = np.isin(labels, kept)
    right = keep & (fields.side > 0)
    left = keep & ~right
    out = np.zeros(mask.shape, np.uint8)
    for own, other, label in ((right, left, LungLabel.RIGHT_LUNG), (left, right, LungLabel.LEFT_LUNG)):
        lab, sz = _components(own)
        if sz.max(initial=0) == 0:
            continue
        main = lab == int(np.argmax(sz))
        out[main] = label
        # Islands of this side: those touching the other lung join it, large ones stay, specks go.
        for k in np.flatnonzero((sz > 0) & (np.arange(sz.size) != int(np.argmax(sz)))):
            island = lab == k
            if sz[k] >= 0.1 * sz.max():
                out[island] = label
            elif (ndi.binary_dilation(island) & other).any():
                out[island] = LungLabel.LEFT_LUNG if label == LungLabel.RIGHT_LUNG else LungLabel.RIGHT_LUNG
    for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        part = out == label
        if part.any():
            filled = fill_holes_per_slice(part)
            out[filled & (out == 0)] = label
    lung = out > 0
    fields.lung[lung & ~mask] = 1.0
    fields.lung[~lung & mask] = 0.0
    is_right = out == LungLabel.RIGHT_LUNG
    is_left = out == LungLabel.LEFT_LUNG
    fields.side[is_right & (fields.side <= 0)] = 1.0
    fields.side[is_left & (fields.side > 0)] = -1.0
    return out


def clean_lesions(fields: WorkingFields, lungs: np.ndarray, *, min_component_voxels: int) -> None:
    """Restrict the lesion field to (slightly dilated) lungs and drop specks (in place)."""
    near_lung = ndi.binary_dilation(lungs > 0, iterations=1)
    fields.lesion[~near_lung] = 0.0
    if min_component_voxels > 1:
        lab, sz = _components((fields.lesion > 0.5) & (lungs > 0))
        small = np.flatnonzero((sz > 0) & (sz < min_component_voxels))
        if small.size:
            fields.lesion[np.isin(lab, small)] = 0.0


def lung_box(lungs: np.ndarray, margin: int = 1) -> tuple[slice, slice, slice] | None:
    """Bounding box of the working-grid lungs (with a margin), or None when empty."""
    if not lungs.any():
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(lungs.any(axis=other))
        box.append(slice(max(0, int(idx[0]) - margin), min(lungs.shape[axis], int(idx[-1]) + margin + 1)))
    return tuple(box)  # type: ignore[return-value]


def to_input_grid(
    fields: WorkingFields, lungs_working: np.ndarray, grid: WorkingGrid, *, block: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical lung and lesion labels on the input grid (uint8), interpolating inside the lung box."""
    import torch

    shape = grid.input_shape
    lungs = np.zeros(shape, np.uint8)
    lesions = np.zeros(shape, np.uint8)
    box = lung_box(lungs_working, margin=1)
    if box is None:
        return lungs, lesions
    # Input index range covered by the working box along each axis.
    ranges = []
    for axis_map, sl, n in zip((grid.z, grid.y, grid.x), box, shape, strict=True):
        lo = int(np.floor(axis_map.start + (sl.start + 0.5) * axis_map.ratio - 0.5))
        hi = int(np.ceil(axis_map.start + (sl.stop - 0.5) * axis_map.ratio - 0.5)) + 1
        ranges.append((max(0, lo), min(n, hi, axis_map.start + axis_map.length)))
    (z0, z1), (y0, y1), (x0, x1) = ranges
    if z1 <= z0 or y1 <= y0 or x1 <= x0:
        return lungs, lesions
    y_index, y_weight = upsample_taps(grid.y, y0, y1)
    x_index, x_weight = upsample_taps(grid.x, x0, x1)
    stack = torch.from_numpy(
        np.stack([fields.lung, fields.side, fields.lesion, fields.consolidation]).astype(np.float32, copy=False)
    )
    from segmentation.grid import resample_axis

    for c0 in range(z0, z1, block):
        c1 = min(z1, c0 + block)
        z_index, z_weight = upsample_taps(grid.z, c0, c1)
        lo, hi = int(z_index.min()), int(z_index.max()) + 1
        ylo, yhi = int(y_index.min()), int(y_index.max()) + 1
        xlo, xhi = int(x_index.min()), int(x_index.max()) + 1
        part = stack[:, lo:hi, ylo:yhi, xlo:xhi]
        part = resample_axis(part, 1, z_index - lo, z_weight)
        part = resample_axis(part, 2, y_index - ylo, y_weight)
        part = resample_axis(part, 3, x_index - xlo, x_weight)
        lung = part[0] > 0.5
        right = part[1] > 0
        lesion = (part[2] > 0.5) & lung
        cons = part[3] > 0
        lab = torch.zeros(lung.shape, dtype=torch.uint8)
        lab[lung & right] = int(LungLabel.RIGHT_LUNG)
        lab[lung & ~right] = int(LungLabel.LEFT_LUNG)
        les = torch.zeros(lung.shape, dtype=torch.uint8)
        les[lesion & ~cons] = int(LesionLabel.GGO)
        les[lesion & cons] = int(LesionLabel.CONSOLIDATION)
        lungs[c0:c1, y0:y1, x0:x1] = lab.numpy()
        lesions[c0:c1, y0:y1, x0:x1] = les.numpy()
    return lungs, lesions
