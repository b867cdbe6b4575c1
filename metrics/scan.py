"""Per-scan measurement: volumes, fractions, zones, severity score, density and quality flags.

:func:`measure_scan` is a pure function of arrays and spacing; formulas and units are listed in
``metrics/README.md``. It makes one labelled pass over the volume (every voxel gets a class
``3 * lung label + lesion label``), keeps only the voxels inside the masks, and derives every
number from two small tables of counts: voxels per (slice, class) and voxels per (class, HU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from metrics.calibration import check_calibration
from metrics.density import HU_BANDS, LUNG_PERCENTILES, HUHistogram, histograms_by_class, merge
from metrics.quality import QualityFlag
from metrics.settings import MetricsSettings
from metrics.severity import zone_points
from metrics.zones import EXTENT_GAP_FRACTION, ZONES, LungSide, ZoneLevel, extent_gap_fraction, slice_zones
from segmentation.result import LesionLabel, LungLabel

_N_LESION = len(LesionLabel)  # 3: none, GGO, consolidation
_N_CLASSES = len(LungLabel) * _N_LESION  # 9 = 3 lung labels x 3 lesion labels


def _class(lung: int, lesion: int) -> int:
    return int(lung) * _N_LESION + int(lesion)


@dataclass(frozen=True)
class ZoneMetrics:
    """One third of one lung (see :mod:`metrics.zones`)."""

    side: LungSide
    level: ZoneLevel
    n_slices: int
    lung_ml: float
    lesion_ml: float
    lesion_pct: float | None
    score: int | None
    """Severity points 0-5; ``None`` when the zone holds no lung."""

    @property
    def column_stem(self) -> str:
        return f"zone_{self.side.value}_{self.level.value}"


@dataclass(frozen=True)
class ScanMetrics:
    """Every per-scan number; :meth:`as_row` gives them under their ``scans.csv`` column names.

    Volumes are in mL, fractions in percent of the lung volume they refer to (``None`` when
    that lung volume is zero), densities in HU (``None`` for an empty region).
    """

    size_x: int
    size_y: int
    size_z: int
    spacing_x_mm: float
    spacing_y_mm: float
    spacing_z_mm: float
    voxel_ml: float
    lung_ml: float
    lung_right_ml: float
    lung_left_ml: float
    ggo_ml: float
    consolidation_ml: float
    lesion_ml: float
    ggo_right_ml: float
    ggo_left_ml: float
    consolidation_right_ml: float
    consolidation_left_ml: float
    lesion_right_ml: float
    lesion_left_ml: float
    lesion_outside_lung_ml: float
    lesion_pct: float | None
    ggo_pct: float | None
    consolidation_pct: float | None
    lesion_right_pct: float | None
    lesion_left_pct: float | None
    ggo_right_pct: float | None
    ggo_left_pct: float | None
    consolidation_right_pct: float | None
    consolidation_left_pct: float | None
    severity_score: int | None
    severity_zones_n: int
    zones: tuple[ZoneMetrics, ...]
    lung_mean_hu: float | None
    lung_sd_hu: float | None
    lesion_mean_hu: float | None
    lesion_sd_hu: float | None
    non_lesion_mean_hu: float | None
    non_lesion_sd_hu: float | None
    ggo_mean_hu: float | None
    ggo_sd_hu: float | None
    consolidation_mean_hu: float | None
    consolidation_sd_hu: float | None
    lung_p10_hu: int | None
    lung_p50_hu: int | None
    lung_p90_hu: int | None
    lung_emphysema_like_pct: float | None
    lung_normally_aerated_pct: float | None
    lung_poorly_aerated_pct: float | None
    lung_non_aerated_pct: float | None
    lung_above_50hu_pct: float | None
    air_hu: int | None
    soft_tissue_hu: int | None
    quality_flags: tuple[QualityFlag, ...]

    def zone(self, side: LungSide, level: ZoneLevel) -> ZoneMetrics:
        for zone in self.zones:
            if zone.side is side and zone.level is level:
                return zone
        raise KeyError((side, level))

    def as_row(self) -> dict[str, object]:
        """Column name -> value for ``scans.csv`` (zones flattened to ``zone_<side>_<level>_*``)."""
        row: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "zones":
                for zone in value:
                    stem = zone.column_stem
                    row[f"{stem}_lung_ml"] = zone.lung_ml
                    row[f"{stem}_lesion_ml"] = zone.lesion_ml
                    row[f"{stem}_lesion_pct"] = zone.lesion_pct
                    row[f"{stem}_score"] = zone.score
            elif item.name == "quality_flags":
                row[item.name] = tuple(flag.value for flag in value)
            else:
                row[item.name] = value
        return row


def _labels_u8(array: np.ndarray, *, name: str, allowed_max: int) -> np.ndarray:
    """The label array as uint8 after checking its values lie in ``0 .. allowed_max``."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name}: label array must have an integer dtype, got {array.dtype}")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > allowed_max:
            raise ValueError(f"{name}: label values must lie in 0..{allowed_max}, found {low}..{high}")
    return array if array.dtype == np.uint8 else array.astype(np.uint8)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def measure_scan(
    *,
    hu: np.ndarray,
    lungs: np.ndarray,
    lesions: np.ndarray,
    spacing_zyx: Sequence[float],
    superior_sign: int,
    slice_thickness_mm: float | None,
    settings: MetricsSettings,
    padding_hu: int | None = None,
) -> ScanMetrics:
    """Measure one scan from its CT values and label masks.

    Parameters
    ----------
    hu
        CT values in HU, shape ``(z, y, x)`` (``sitk.GetArrayViewFromImage`` order); integer
        dtype expected (floats are rounded to integer HU).
    lungs
        Same shape; :class:`~segmentation.result.LungLabel` values (1 right, 2 left).
    lesions
        Same shape; :class:`~segmentation.result.LesionLabel` values (1 GGO, 2 consolidation).
        Lesion voxels outside ``lungs`` are reported (``lesion_outside_lung_ml`` and the
        ``LESION_OUTSIDE_LUNG`` flag) but not counted as lesion.
    spacing_zyx
        Voxel spacing in mm along (z, y, x): ``image.GetSpacing()[::-1]``.
    superior_sign
        +1 if increasing z index goes towards the head, -1 towards the feet
        (:func:`metrics.zones.superior_sign_from_direction`).
    slice_thickness_mm
        Reconstructed slice thickness (DICOM SliceThickness); ``None``: the z spacing stands in.
    settings
        The ``metrics`` section of the configuration.
    padding_hu
        The value the ingestion stage writes outside the field of view (``hu.padding_hu``),
        ignored by the calibration check; ``None`` when the volume has no padding.

    Raises
    ------
    ValueError
        On mismatched shapes, a non-3-D volume, non-positive spacing or label values outside
        the label tables.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"hu must be a 3-D (z, y, x) array, got shape {hu.shape}")
    if np.shape(lungs) != hu.shape or np.shape(lesions) != hu.shape:
        raise ValueError(f"shapes differ: hu {hu.shape}, lungs {np.shape(lungs)}, lesions {np.shape(lesions)}")
    spacing = tuple(float(s) for s in spacing_zyx)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_zyx must be three positive numbers, got {tuple(spacing_zyx)}")
    if superior_sign not in (1, -1):
        raise ValueError(f"superior_sign must be +1 or -1, got {superior_sign!r}")
    lungs8 = _labels_u8(lungs, name="lungs", allowed_max=max(LungLabel))
    lesions8 = _labels_u8(lesions, name="lesions", allowed_max=max(LesionLabel))

    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0

    counts_zc, class_hist = _count_classes(hu, lungs8, lesions8)

    def hist_of(lung: LungLabel, lesion: LesionLabel) -> HUHistogram:
        return class_hist[_class(lung, lesion)]

    totals = counts_zc.sum(axis=0)

    def n_of(lung: int, lesion: int) -> int:
        return int(totals[_class(lung, lesion)])

    # --- volumes and fractions -----------------------------------------------------------
    right, left = int(LungLabel.RIGHT_LUNG), int(LungLabel.LEFT_LUNG)
    ggo, cons, none = int(LesionLabel.GGO), int(LesionLabel.CONSOLIDATION), int(LesionLabel.NONE)
    n_lung_side = {s: n_of(s, none) + n_of(s, ggo) + n_of(s, cons) for s in (right, left)}
    n_ggo_side = {s: n_of(s, ggo) for s in (right, left)}
    n_cons_side = {s: n_of(s, cons) for s in (right, left)}
    n_lung = n_lung_side[right] + n_lung_side[left]
    n_ggo = n_ggo_side[right] + n_ggo_side[left]
    n_cons = n_cons_side[right] + n_cons_side[left]
    n_lesion = n_ggo + n_cons
    n_outside = n_of(int(LungLabel.BACKGROUND), ggo) + n_of(int(LungLabel.BACKGROUND), cons)

    # --- zones and severity score ---------------------------------------------------------
    zones: list[ZoneMetrics] = []
    extent_gap = False
    for side in (LungSide.RIGHT, LungSide.LEFT):
        s = side.label
        lung_z = counts_zc[:, _class(s, none)] + counts_zc[:, _class(s, ggo)] + counts_zc[:, _class(s, cons)]
        lesion_z = counts_zc[:, _class(s, ggo)] + counts_zc[:, _class(s, cons)]
        zone_of_slice = slice_zones(lung_z > 0, superior_sign=superior_sign)
        extent_gap |= extent_gap_fraction(lung_z) >= EXTENT_GAP_FRACTION
        for index, level in enumerate((ZoneLevel.UPPER, ZoneLevel.MIDDLE, ZoneLevel.LOWER)):
            in_zone = zone_of_slice == index
            n_zone_lung = int(lung_z[in_zone].sum())
            n_zone_lesion = int(lesion_z[in_zone].sum())
            zones.append(
                ZoneMetrics(
                    side=side,
                    level=level,
                    n_slices=int(in_zone.sum()),
                    lung_ml=n_zone_lung * voxel_ml,
                    lesion_ml=n_zone_lesion * voxel_ml,
                    lesion_pct=_pct(n_zone_lesion, n_zone_lung),
                    score=zone_points(n_zone_lesion, n_zone_lung),
                )
            )
    assert [(z.side, z.level) for z in zones] == list(ZONES)
    scored = [z.score for z in zones if z.score is not None]
    severity = sum(scored) if scored else None

    # --- density ----------------------------------------------------------------------------
    all_rows = [hist_of(lung, lesion) for lung in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG) for lesion in LesionLabel]
    lung_h = merge(all_rows)
    ggo_h = merge([hist_of(lung, LesionLabel.GGO) for lung in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)])
    cons_h = merge([hist_of(lung, LesionLabel.CONSOLIDATION) for lung in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)])
    lesion_h = merge([ggo_h, cons_h])
    clear_h = merge([hist_of(lung, LesionLabel.NONE) for lung in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)])
    lung_mean, lung_sd = lung_h.mean_sd()
    lesion_mean, lesion_sd = lesion_h.mean_sd()
    clear_mean, clear_sd = clear_h.mean_sd()
    ggo_mean, ggo_sd = ggo_h.mean_sd()
    cons_mean, cons_sd = cons_h.mean_sd()
    p10, p50, p90 = (lung_h.percentile(q) for q in LUNG_PERCENTILES)
    bands = lung_h.band_counts()
    band_pct = {band: _pct(bands[band], n_lung) for band in HU_BANDS}

    # --- quality flags ----------------------------------------------------------------------
    # The calibration samples every n-th slice from index 0: counted from the feet whatever the
    # storage order (views, no copies), so head-first and feet-first copies of a scan agree.
    feet_first = (slice(None, None, -1),) if superior_sign < 0 else (slice(None),)
    air, tissue = check_calibration(
        hu[feet_first], lungs8[feet_first], lesions8[feet_first], settings=settings.calibration, padding_hu=padding_hu
    )
    flags: set[QualityFlag] = set()
    if n_lung == 0:
        flags.add(QualityFlag.NO_LUNG)
    else:
        if n_lung_side[right] == 0:
            flags.add(QualityFlag.RIGHT_LUNG_MISSING)
        if n_lung_side[left] == 0:
            flags.add(QualityFlag.LEFT_LUNG_MISSING)
    lung_ml = n_lung * voxel_ml
    quality = settings.quality
    if not quality.lung_ml_min <= lung_ml <= quality.lung_ml_max:
        flags.add(QualityFlag.LUNG_VOLUME_IMPLAUSIBLE)
    lung_per_slice = counts_zc[:, _N_LESION:].sum(axis=1)
    if n_lung and (lung_per_slice[0] > 0 or lung_per_slice[-1] > 0):
        flags.add(QualityFlag.LUNG_CUT_CRANIOCAUDAL)
    if n_lung and _touches_in_plane_border(lungs8):
        flags.add(QualityFlag.LUNG_CUT_IN_PLANE)
    if extent_gap:
        flags.add(QualityFlag.LUNG_EXTENT_GAP)
    if n_outside:
        flags.add(QualityFlag.LESION_OUTSIDE_LUNG)
    thickness = slice_thickness_mm if slice_thickness_mm is not None else spacing[0]
    if thickness > quality.max_slice_thickness_mm:
        flags.add(QualityFlag.THICK_SLICES)
    if air.off:
        flags.add(QualityFlag.HU_AIR_OFF)
    if tissue.off:
        flags.add(QualityFlag.HU_SOFT_TISSUE_OFF)

    return ScanMetrics(
        size_x=int(hu.shape[2]),
        size_y=int(hu.shape[1]),
        size_z=int(hu.shape[0]),
        spacing_x_mm=spacing[2],
        spacing_y_mm=spacing[1],
        spacing_z_mm=spacing[0],
        voxel_ml=voxel_ml,
        lung_ml=lung_ml,
        lung_right_ml=n_lung_side[right] * voxel_ml,
        lung_left_ml=n_lung_side[left] * voxel_ml,
        ggo_ml=n_ggo * voxel_ml,
        consolidation_ml=n_cons * voxel_ml,
        lesion_ml=n_lesion * voxel_ml,
        ggo_right_ml=n_ggo_side[right] * voxel_ml,
        ggo_left_ml=n_ggo_side[left] * voxel_ml,
        consolidation_right_ml=n_cons_side[right] * voxel_ml,
        consolidation_left_ml=n_cons_side[left] * voxel_ml,
        lesion_right_ml=(n_ggo_side[right] + n_cons_side[right]) * voxel_ml,
        lesion_left_ml=(n_ggo_side[left] + n_cons_side[left]) * voxel_ml,
        lesion_outside_lung_ml=n_outside * voxel_ml,
        lesion_pct=_pct(n_lesion, n_lung),
        ggo_pct=_pct(n_ggo, n_lung),
        consolidation_pct=_pct(n_cons, n_lung),
        lesion_right_pct=_pct(n_ggo_side[right] + n_cons_side[right], n_lung_side[right]),
        lesion_left_pct=_pct(n_ggo_side[left] + n_cons_side[left], n_lung_side[left]),
        ggo_right_pct=_pct(n_ggo_side[right], n_lung_side[right]),
        ggo_left_pct=_pct(n_ggo_side[left], n_lung_side[left]),
        consolidation_right_pct=_pct(n_cons_side[right], n_lung_side[right]),
        consolidation_left_pct=_pct(n_cons_side[left], n_lung_side[left]),
        severity_score=severity,
        severity_zones_n=len(scored),
        zones=tuple(zones),
        lung_mean_hu=lung_mean,
        lung_sd_hu=lung_sd,
        lesion_mean_hu=lesion_mean,
        lesion_sd_hu=lesion_sd,
        non_lesion_mean_hu=clear_mean,
        non_lesion_sd_hu=clear_sd,
        ggo_mean_hu=ggo_mean,
        ggo_sd_hu=ggo_sd,
        consolidation_mean_hu=cons_mean,
        consolidation_sd_hu=cons_sd,
        lung_p10_hu=p10,
        lung_p50_hu=p50,
        lung_p90_hu=p90,
        lung_emphysema_like_pct=band_pct[HU_BANDS[0]],
        lung_normally_aerated_pct=band_pct[HU_BANDS[1]],
        lung_poorly_aerated_pct=band_pct[HU_BANDS[2]],
        lung_non_aerated_pct=band_pct[HU_BANDS[3]],
        lung_above_50hu_pct=band_pct[HU_BANDS[4]],
        air_hu=air.mode_hu,
        soft_tissue_hu=tissue.mode_hu,
        quality_flags=tuple(sorted(flags, key=lambda flag: flag.value)),
    )


def _bounding_slices(lungs: np.ndarray, lesions: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box (z, y, x slices) of all mask voxels from max-projections; ``None`` if empty."""
    footprint = np.maximum(lungs.max(axis=0), lesions.max(axis=0))
    rows = np.flatnonzero(footprint.max(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(footprint.max(axis=0))
    n_z = lungs.shape[0]
    per_slice = np.maximum(lungs.reshape(n_z, -1).max(axis=1), lesions.reshape(n_z, -1).max(axis=1))
    z_used = np.flatnonzero(per_slice)
    return (
        slice(int(z_used[0]), int(z_used[-1]) + 1),
        slice(int(rows[0]), int(rows[-1]) + 1),
        slice(int(cols[0]), int(cols[-1]) + 1),
    )


def _count_classes(hu: np.ndarray, lungs: np.ndarray, lesions: np.ndarray) -> tuple[np.ndarray, list[HUHistogram]]:
    """Voxels per (slice, class) and one HU histogram per class, class = 3 * lung + lesion.

    Only the bounding box of the masks is labelled; within it the voxels of any mask are
    gathered once (in C order, so their slice index follows from the per-slice counts).
    The background class 0 is not counted (its row is zero).
    """
    n_z = hu.shape[0]
    counts_zc = np.zeros((n_z, _N_CLASSES), dtype=np.int64)
    box = _bounding_slices(lungs, lesions)
    if box is None:
        return counts_zc, [HUHistogram(0, np.zeros(1, dtype=np.int64)) for _ in range(_N_CLASSES)]
    classes = lungs[box] * np.uint8(_N_LESION)
    classes += lesions[box]
    inside = classes != 0
    n_box_z = classes.shape[0]
    per_slice = np.count_nonzero(inside.reshape(n_box_z, -1), axis=1)
    inside_classes = classes[inside]
    inside_hu = hu[box][inside]
    del classes, inside
    slice_of = np.repeat(np.arange(n_box_z, dtype=np.intp), per_slice)
    slice_of *= _N_CLASSES
    slice_of += inside_classes
    box_counts = np.bincount(slice_of, minlength=n_box_z * _N_CLASSES).reshape(n_box_z, _N_CLASSES)
    counts_zc[box[0]] = box_counts
    del slice_of
    histograms = histograms_by_class(inside_hu, inside_classes, n_classes=_N_CLASSES)
    return counts_zc, histograms


def _touches_in_plane_border(lungs: np.ndarray) -> bool:
    """Any lung voxel in the first/last row or column of any slice."""
    return bool(lungs[:, 0, :].any() or lungs[:, -1, :].any() or lungs[:, :, 0].any() or lungs[:, :, -1].any())
