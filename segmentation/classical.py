"""The classical (HU-threshold) segmenter: lung masks of the training backgrounds and the baseline.

Lungs: body mask, air inside the body below a HU threshold, airway (trachea and main
bronchi) found by region growing from a tracheal seed and removed, component selection,
left/right split at the anterior/posterior junction, and per-slice hole filling that puts
the vessels and small airways back into each lung.

Lesions (baseline only): inside those lungs, smoothed HU in the GGO band or above the
consolidation threshold, with vessels removed by a morphological opening. Dense
consolidation at the pleura is cut out of the lung by construction: that is the known
failure of threshold methods which the network is trained to avoid.

All functions take *canonical* arrays (see :mod:`segmentation.grid`): axis 0 inferior->superior,
axis 1 anterior->posterior, axis 2 patient right->left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from segmentation.result import LesionLabel, LungLabel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassicalParameters:
    """Thresholds of the classical segmenter (from the ``segmentation.classical`` config section)."""

    body_threshold_hu: float
    lung_threshold_hu: float
    airway_max_threshold_hu: float
    airway_max_volume_ml: float
    min_lung_volume_ml: float
    ggo_min_hu: float
    consolidation_min_hu: float
    lesion_opening_mm: float
    min_lesion_volume_ml: float


#: Values used when building the training backgrounds (offline tooling; the baseline reads the config).
DEFAULT_PARAMETERS = ClassicalParameters(
    body_threshold_hu=-500.0,
    lung_threshold_hu=-400.0,
    airway_max_threshold_hu=-850.0,
    airway_max_volume_ml=400.0,
    min_lung_volume_ml=5.0,
    ggo_min_hu=-700.0,
    consolidation_min_hu=-250.0,
    lesion_opening_mm=3.0,
    min_lesion_volume_ml=0.5,
)


@dataclass(frozen=True)
class ClassicalLungs:
    """Result of :func:`segment_lungs` on a canonical array."""

    lungs: np.ndarray
    """uint8 :class:`LungLabel` values."""
    airway: np.ndarray
    """bool: the trachea and bronchi found by region growing (empty if no trachea was found)."""
    body: np.ndarray
    """bool: the body with its internal air (lungs, airways) filled in."""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def ball(radius_mm: float, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Boolean ball of ``radius_mm`` on a grid of ``spacing_zyx`` (a structuring element)."""
    radii = [max(0, int(np.floor(radius_mm / s))) for s in spacing_zyx]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    dist = sum((g * s / max(radius_mm, 1e-6)) ** 2 for g, s in zip(grids, spacing_zyx, strict=True))
    return dist <= 1.0


def _largest_components(mask: np.ndarray, *, keep: int = 1, structure: np.ndarray | None = None) -> np.ndarray:
    labels, n = ndi.label(mask, structure=structure)
    if n <= keep:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    best = np.argsort(sizes)[::-1][:keep]
    return np.isin(labels, best[sizes[best] > 0])


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice (axis 0) of a boolean volume."""
    out = np.empty_like(mask, dtype=bool)
    for z in range(mask.shape[0]):
        out[z] = ndi.binary_fill_holes(mask[z]) if mask[z].any() else False
    return out


def _bbox(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    coords = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax))) for ax in range(mask.ndim)]
    return tuple(
        slice(max(0, int(c[0]) - margin), min(mask.shape[ax], int(c[-1]) + margin + 1)) for ax, c in enumerate(coords)
    )


def smooth(hu: np.ndarray, spacing_zyx: tuple[float, float, float], sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing with a sigma in mm (in-plane only when slices are thicker than the sigma)."""
    sigma = [sigma_mm / s if s < 2 * sigma_mm else 0.0 for s in spacing_zyx]
    return ndi.gaussian_filter(hu.astype(np.float32, copy=False), sigma=sigma, mode="nearest")


# --------------------------------------------------------------------------------------------
# body, airway, lungs
# --------------------------------------------------------------------------------------------


def body_mask(hu: np.ndarray, *, threshold_hu: float) -> np.ndarray:
    """The patient's body (largest dense component), with internal air filled slice by slice."""
    dense = hu > threshold_hu
    # Opening in-plane detaches the couch and clothing that touch the skin at a few voxels.
    dense = ndi.binary_opening(dense, structure=np.ones((1, 3, 3), bool))
    body = _largest_components(dense, keep=1)
    return fill_holes_per_slice(body)


def find_trachea_seed(
    smoothed: np.ndarray, air: np.ndarray, body: np.ndarray, spacing_zyx: tuple[float, float, float]
) -> tuple[int, int, int] | None:
    """A voxel inside the trachea: a round, very dark, central air region in the upper slices.

    Returns ``None`` when no slice shows one (slabs below the carina, abdomen-only scans).
    """
    sz, sy, sx = spacing_zyx
    pixel_area = sy * sx
    z_with_air = np.flatnonzero(air.any(axis=(1, 2)))
    if z_with_air.size == 0:
        return None
    z_top = int(z_with_air[-1])
    z_bottom = max(int(z_with_air[0]), z_top - int(round(120.0 / sz)))
    body_x = np.flatnonzero(body.any(axis=(0, 1)))
    x_centre = 0.5 * (body_x[0] + body_x[-1])
    for z in range(z_top, z_bottom - 1, -1):
        dark = air[z] & (smoothed[z] < -900.0)
        labels, n = ndi.label(dark)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        areas = ndi.sum_labels(np.ones_like(labels), labels, index) * pixel_area
        centroids = ndi.center_of_mass(dark, labels, index)
        body_rows = np.flatnonzero(body[z].any(axis=1))
        for area, (cy, cx), lab in zip(areas, centroids, index, strict=True):
            if not (80.0 <= area <= 900.0):
                continue
            if abs(cx - x_centre) * sx > 25.0:
                continue
            # The trachea sits in the anterior two thirds of the body (in front of the spine).
            if body_rows.size and (cy - body_rows[0]) > 0.7 * (body_rows[-1] - body_rows[0]):
                continue
            region = labels == lab
            ys, xs = np.nonzero(region)
            extent_y, extent_x = (np.ptp(ys) + 1) * sy, (np.ptp(xs) + 1) * sx
            if max(extent_y, extent_x) > 3.0 * min(extent_y, extent_x):
                continue
            # The trachea has a soft-tissue wall around it; a dark bulla or airway inside a lung does not.
            ring = ndi.binary_dilation(region, iterations=max(1, int(round(3.0 / sx)))) & ~region
            if np.mean(smoothed[z][ring] > -500.0) < 0.5:
                continue
            pick = np.argmin(smoothed[z][ys, xs])
            return z, int(ys[pick]), int(xs[pick])
    return None


def grow_airway(
    smoothed: np.ndarray,
    seed: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    *,
    max_threshold_hu: float,
    max_volume_ml: float,
) -> np.ndarray:
    """Region-grow the airway lumen from ``seed`` with the highest threshold that does not leak.

    The threshold rises from -980 HU in 10 HU steps; growth stops before the step where the
    volume (once above 5 ml) more than doubles or exceeds ``max_volume_ml`` (a leak into the parenchyma).
    """
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    best = np.zeros(smoothed.shape, bool)
    previous = 0
    for threshold in np.arange(-980.0, max_threshold_hu + 1.0, 10.0):
        candidate = smoothed < threshold
        if not candidate[seed]:
            continue
        labels, _ = ndi.label(candidate)
        region = labels == labels[seed]
        volume = int(region.sum())
        leaked = previous * voxel_ml >= 5.0 and volume > 2.0 * previous
        if volume * voxel_ml > max_volume_ml or leaked:
            break
        best, previous = region, volume
    return best


def split_left_right(lung: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Label a lung mask 1 = right, 2 = left, separating lungs that touch at a junction line."""
    labels, n = ndi.label(lung)
    sizes = np.bincount(labels.ravel()) if n else np.zeros(1, int)
    out = np.zeros(lung.shape, np.uint8)
    if n == 0:
        return out
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    total = sizes.sum()
    markers = None
    if n >= 2 and sizes[order[1]] > 0.15 * total:
        markers = np.zeros(lung.shape, np.int32)
        markers[labels == order[0]] = 1
        markers[labels == order[1]] = 2
    else:
        # Touching lungs: erode in-plane until two large parts appear.
        eroded = lung.copy()
        structure = np.zeros((3, 3, 3), bool)
        structure[1] = ndi.generate_binary_structure(2, 1)
        for _ in range(int(round(15.0 / min(spacing_zyx[1:])))):
            eroded = ndi.binary_erosion(eroded, structure=structure)
            lab, m = ndi.label(eroded)
            if m >= 2:
                s = np.bincount(lab.ravel())
                s[0] = 0
                o = np.argsort(s)[::-1]
                if s[o[1]] > 0.15 * s.sum():
                    markers = np.zeros(lung.shape, np.int32)
                    markers[lab == o[0]] = 1
                    markers[lab == o[1]] = 2
                    break
    if markers is None:
        # One lung only (or an unsplittable mask): side from the body midline is decided by the caller.
        out[lung] = 1
        return out
    from skimage.segmentation import watershed

    box = _bbox(lung, margin=1)
    assigned = watershed(np.zeros(lung[box].shape, np.uint8), markers=markers[box], mask=lung[box])
    full = np.zeros(lung.shape, np.int32)
    full[box] = assigned
    # Marker 1/2 -> right/left by mean column (canonical x runs from the patient's right to left).
    cols = [np.nonzero(full == m)[2].mean() for m in (1, 2)]
    right_marker = 1 if cols[0] < cols[1] else 2
    out[full == right_marker] = LungLabel.RIGHT_LUNG
    out[(full > 0) & (full != right_marker)] = LungLabel.LEFT_LUNG
    return out


def segment_lungs(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], params: ClassicalParameters = DEFAULT_PARAMETERS
) -> ClassicalLungs:
    """Classical right/left lung masks of a canonical HU array (trachea and main bronchi excluded)."""
    hu = np.asarray(hu, dtype=np.float32)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    body = body_mask(hu, threshold_hu=params.body_threshold_hu)
    smoothed = smooth(hu, spacing_zyx, sigma_mm=0.7)
    air = (smoothed < params.lung_threshold_hu) & body
    # Air that touches the body outline (between skin folds, under the arms) is outside the chest.
    air &= ndi.binary_erosion(body, structure=np.ones((1, 3, 3), bool), iterations=2)
    labels, n = ndi.label(air)
    if n == 0:
        empty = np.zeros(hu.shape, bool)
        return ClassicalLungs(np.zeros(hu.shape, np.uint8), empty, body)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = int(sizes.max())
    keep = np.flatnonzero((sizes >= 0.1 * largest) & (sizes * voxel_ml >= params.min_lung_volume_ml))
    lung_air = np.isin(labels, keep)

    airway = np.zeros(hu.shape, bool)
    seed = find_trachea_seed(smoothed, lung_air, body, spacing_zyx)
    if seed is not None:
        airway = grow_airway(
            smoothed,
            seed,
            spacing_zyx,
            max_threshold_hu=params.airway_max_threshold_hu,
            max_volume_ml=params.airway_max_volume_ml,
        )
        airway_wall = ndi.binary_dilation(airway, structure=ndi.generate_binary_structure(3, 1))
        lung_air &= ~airway_wall
    else:
        log.debug("no trachea found: airway not removed")

    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    lung_air = ndi.binary_opening(lung_air, structure=in_plane)
    labels, n = ndi.label(lung_air)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    if n == 0:
        return ClassicalLungs(np.zeros(hu.shape, np.uint8), airway, body)
    largest = int(sizes.max())
    keep = np.flatnonzero((sizes >= 0.1 * largest) & (sizes * voxel_ml >= params.min_lung_volume_ml))
    lung_air = np.isin(labels, keep)

    sides = split_left_right(lung_air, spacing_zyx)
    lungs = np.zeros(hu.shape, np.uint8)
    closing = ball(2.0, spacing_zyx)
    for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        part = sides == label
        if not part.any():
            continue
        box = _bbox(part, margin=4)
        closed = ndi.binary_closing(np.pad(part[box], 4), structure=closing)[4:-4, 4:-4, 4:-4]
        filled = fill_holes_per_slice(closed)
        region = lungs[box]
        region[filled & (region == 0)] = label
    # The airway itself never belongs to the lungs unless it is enclosed by lung in its slice.
    lungs[airway & ~fill_holes_per_slice(lungs > 0)] = 0
    return ClassicalLungs(lungs, airway, body)


# --------------------------------------------------------------------------------------------
# baseline lesions
# --------------------------------------------------------------------------------------------


def segment_lesions(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    params: ClassicalParameters = DEFAULT_PARAMETERS,
) -> np.ndarray:
    """Baseline GGO/consolidation: HU bands inside the lungs, vessels removed by an opening."""
    lesions = np.zeros(hu.shape, np.uint8)
    inside = lungs > 0
    if not inside.any():
        return lesions
    box = _bbox(inside, margin=2)
    smoothed = smooth(np.asarray(hu[box], np.float32), spacing_zyx, sigma_mm=1.0)
    dense = (smoothed >= params.ggo_min_hu) & inside[box]
    opened = ndi.binary_opening(dense, structure=ball(params.lesion_opening_mm / 2.0, spacing_zyx))
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    labels, n = ndi.label(opened)
    if n:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        opened = np.isin(labels, np.flatnonzero(sizes * voxel_ml >= params.min_lesion_volume_ml))
    region = lesions[box]
    region[opened & (smoothed < params.consolidation_min_hu)] = LesionLabel.GGO
    region[opened & (smoothed >= params.consolidation_min_hu)] = LesionLabel.CONSOLIDATION
    return lesions
