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
from segmentation.preprocess import PreprocessParameters, WorkingGrid
from segmentation.result import LesionLabel, LungLabel


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the network's probabilities (``postprocessing`` in the model JSON).

    0.5 is the plain argmax-like decision; a model's own values are calibrated by
    ``lunglesion train`` on development cases (``segmentation/training/calibrate.py``).
    """

    lung: float = 0.5
    """Lung where P(right) + P(left) exceeds this."""
    lesion: float = 0.5
    """Lesion where P(GGO) + P(consolidation) exceeds this (inside the lungs)."""

    @classmethod
    def from_dict(cls, data: dict | None) -> Thresholds:
        data = data or {}
        out = cls(lung=float(data.get("lung_threshold", 0.5)), lesion=float(data.get("lesion_threshold", 0.5)))
        for name, value in (("lung_threshold", out.lung), ("lesion_threshold", out.lesion)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        return out

    def to_dict(self) -> dict:
        return {"lung_threshold": float(self.lung), "lesion_threshold": float(self.lesion)}


@dataclass
class WorkingFields:
    """Probability-derived fields on the unpadded working grid, all float32 (Z, H, W)."""

    lung: np.ndarray
    """P(lung) = P(right) + P(left); lung where > 0.5 (see :meth:`with_thresholds`)."""
    side: np.ndarray
    """P(right) - P(left); right lung where > 0."""
    lesion: np.ndarray
    """P(GGO) + P(consolidation); lesion where > 0.5 (see :meth:`with_thresholds`)."""
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

    def with_thresholds(self, thresholds: Thresholds) -> WorkingFields:
        """A copy whose lung and lesion fields decide at 0.5 what these decide at ``thresholds``."""
        return WorkingFields(
            lung=self.lung + np.float32(0.5 - thresholds.lung),
            side=self.side.copy(),
            lesion=self.lesion + np.float32(0.5 - thresholds.lesion),
            consolidation=self.consolidation.copy(),
        )


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, n = ndi.label(mask, structure=ndi.generate_binary_structure(3, 2))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


PURE_AIR_HU = -975.0
"""Edge-connected air whose local median (:data:`PURE_AIR_WINDOW` working pixels) is at or below
this is the air around the body (or padding), never lung.

Air reads -1000 HU whatever the noise (a median does not move with it) and padding is lower;
aerated lung, vessels and septa included, has a median of about -850 HU, and the lung's
density in severe emphysema is typically still above -950 HU."""

PURE_AIR_WINDOW = 5
"""Side (working pixels, 8.75 mm at the shipped 1.75 mm) of the in-plane median that decides pure air."""


@dataclass(frozen=True)
class EdgeAir:
    """Air connected to the edge of each working slice (:func:`outside_air`), a property of the image."""

    candidates: np.ndarray
    """Every edge-connected air voxel (Z, H, W) bool: air outside the body, or a lung the field of view cuts."""
    pure: np.ndarray
    """The candidates whose neighbourhood is pure air (:data:`PURE_AIR_HU`): never lung."""


def outside_air(working: np.ndarray, *, threshold: float, pure_air: float) -> EdgeAir:
    """Air connected to the edge of each working slice through air.

    ``working`` is the (unpadded) network input, ``threshold`` the normalised intensity below
    which a voxel is air and ``pure_air`` the normalised :data:`PURE_AIR_HU`; a candidate whose
    :data:`PURE_AIR_WINDOW`-pixel median is at or below ``pure_air`` is :attr:`EdgeAir.pure`.
    """
    candidates = np.zeros(working.shape, bool)
    pure = np.zeros(working.shape, bool)
    for z in range(working.shape[0]):
        air = working[z] < threshold
        labels, n = ndi.label(air)
        if n == 0:
            continue
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        edge = edge[edge > 0]
        if not edge.size:
            continue
        candidates[z] = np.isin(labels, edge)
        # The window's median is at or below pure_air exactly where more than half its pixels are
        # (a mean filter of the indicator: separable, so far cheaper than a median filter).
        below = ndi.uniform_filter((working[z] <= pure_air).astype(np.float32), size=PURE_AIR_WINDOW, mode="nearest")
        pure[z] = candidates[z] & (below > 0.5)
    return EdgeAir(candidates=candidates, pure=pure)


def edge_air(working: np.ndarray, params: PreprocessParameters) -> EdgeAir:
    """:func:`outside_air` with a model's body threshold and :data:`PURE_AIR_HU`."""
    return outside_air(
        working,
        threshold=float(params.normalise(params.body_threshold_hu)),
        pure_air=float(params.normalise(PURE_AIR_HU)),
    )


def cannot_be_lung(edge: EdgeAir, lung: np.ndarray) -> np.ndarray:
    """The edge-connected air that is outside the body, given the network's lung decision ``lung``.

    Pure air (:attr:`EdgeAir.pure`) is outside whatever the network calls it. The rest of the
    edge-connected air (parenchyma, with its vessels and septa, denser than pure air) is a lung
    that the field of view cuts through (a targeted reconstruction, an image cropped close to the
    chest, a reconstruction circle across a lung) where the network calls it lung, and outside
    where it does not. On full-field chest CT the lungs do not reach the edge: on every
    full-field chest scan measured, the result is the one with all edge-connected air outside
    (``segmentation/MODEL_CARD.md``, *The field-of-view rules*).
    """
    return edge.candidates & (edge.pure | ~lung)


def clean_lungs(fields: WorkingFields, *, min_component_fraction: float, outside: EdgeAir | None = None) -> np.ndarray:
    """Clean the lung fields in place; return the working-grid lung labels (uint8 :class:`LungLabel`).

    Parameters
    ----------
    fields
        Working fields; ``lung`` and ``side`` are modified so that interpolating them
        reproduces the cleaned decision.
    min_component_fraction
        Lung components smaller than this fraction of the largest are removed.
    outside
        Edge-connected air (:func:`outside_air`): never lung, except a lung that the field of
        view cuts through (:func:`cannot_be_lung`).
    """
    if outside is not None:
        fields.lung[cannot_be_lung(outside, fields.lung > 0.5)] = 0.0
    mask = fields.lung > 0.5
    labels, sizes = _components(mask)
    keep = np.zeros(mask.shape, bool)
    if sizes.max(initial=0) > 0:
        kept = np.flatnonzero(sizes >= min_component_fraction * sizes.max())
        keep = np.isin(labels, kept)
    right = keep & (fields.side > 0)
    left = keep & ~right
    out = np.zeros(mask.shape, np.uint8)
    sides = {}
    for own, label in ((right, LungLabel.RIGHT_LUNG), (left, LungLabel.LEFT_LUNG)):
        lab, sz = _components(own)
        main = lab == int(np.argmax(sz)) if sz.max(initial=0) > 0 else np.zeros(mask.shape, bool)
        sides[label] = (lab, sz, main)
    pairs = ((LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG), (LungLabel.LEFT_LUNG, LungLabel.RIGHT_LUNG))
    for label, other_label in pairs:
        lab, sz, _ = sides[label]
        if sz.max(initial=0) == 0:
            continue
        # Islands of this side: large ones stay, those touching the other lung's main part join it,
        # specks go. (A lookup table, not a loop: a poor network can produce thousands of islands.)
        touching = np.bincount(lab[ndi.binary_dilation(sides[other_label][2])], minlength=sz.size) > 0
        lut = np.zeros(sz.size, np.uint8)
        lut[touching] = other_label
        lut[sz >= 0.1 * sz.max()] = label
        lut[0] = 0
        assigned = lut[lab]
        out[assigned > 0] = assigned[assigned > 0]
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


@dataclass(frozen=True)
class Cleanup:
    """The clean-up settings every scan is segmented with (``segmentation`` in the configuration)."""

    min_component_fraction: float
    """Lung components smaller than this fraction of the largest are removed."""
    min_lesion_voxels: int
    """Lesion components with fewer working voxels are dropped (0 or 1: keep all)."""


def clean_up(fields: WorkingFields, outside: EdgeAir | None, cleanup: Cleanup) -> np.ndarray:
    """The whole working-grid clean-up, in place on ``fields``; returns the working lung labels.

    Lungs first (:func:`clean_lungs`), then lesions restricted to them (:func:`clean_lesions`).
    """
    lungs = clean_lungs(fields, min_component_fraction=cleanup.min_component_fraction, outside=outside)
    clean_lesions(fields, lungs, min_component_voxels=cleanup.min_lesion_voxels)
    return lungs


def working_lesion_labels(fields: WorkingFields, lungs: np.ndarray) -> np.ndarray:
    """Lesion labels (:class:`LesionLabel`) on the working grid, inside ``lungs``, from cleaned fields."""
    lesion = (fields.lesion > 0.5) & (lungs > 0)
    out = np.zeros(lungs.shape, np.uint8)
    out[lesion] = LesionLabel.GGO
    out[lesion & (fields.consolidation > 0)] = LesionLabel.CONSOLIDATION
    return out


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
    import torch.nn.functional as F

    from segmentation.grid import resample_axis

    # (Z, 4, H, W): z first so that selecting working slices copies contiguous blocks.
    stack = torch.from_numpy(
        np.stack([fields.lung, fields.side, fields.lesion, fields.consolidation], axis=1).astype(np.float32, copy=False)
    )
    height, width = stack.shape[2], stack.shape[3]
    # In-plane: bilinear sampling at the input voxel centres (align_corners=False convention;
    # 'border' clamps like the edge handling of grid.axis_taps).
    gy = torch.from_numpy((2 * grid.y.input_positions(y0, y1) + 1) / height - 1).float()
    gx = torch.from_numpy((2 * grid.x.input_positions(x0, x1) + 1) / width - 1).float()
    plane = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # (Hb, Wb, 2) as (x, y)
    for c0 in range(z0, z1, block):
        c1 = min(z1, c0 + block)
        z_index, z_weight = upsample_taps(grid.z, c0, c1)
        lo, hi = int(z_index.min()), int(z_index.max()) + 1
        part = resample_axis(stack[lo:hi], 0, z_index - lo, z_weight)  # (c1 - c0, 4, H, W), averaging if coarser
        part = F.grid_sample(
            part, plane.expand(part.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False
        ).permute(1, 0, 2, 3)
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
