"""Synthetic COVID-19 lesions placed into real (or phantom) lungs, with exact labels.

Appearance model (HU calibrated on the real lesions in ``../shared/data``: the LIDC-IDRI-0002
ground-glass nodule has a median of -594 HU, the radiomics NSCLC tumours +11..+41 HU):

* **GGO** raises the attenuation of the aerated parenchyma towards a target of about
  -750..-350 HU while vessels (already denser than the target) keep their value, so they stay
  visible through the opacity. The target varies smoothly inside a lesion (texture).
* **Crazy paving** is GGO plus a network of thin septal lines (zero-crossings of a band-pass
  random field, cells of 6-15 mm) raised by 150-350 HU.
* **Consolidation** replaces the parenchyma by soft-tissue density (-100..+60 HU, textured),
  keeps contrast-enhanced vessels (CT angiogram sign) and the image noise, and carries air
  bronchograms (random tubes, the intersection of two zero-level sheets) in its core.
* **Mixed** lesions have a consolidated core inside a GGO halo.

Shapes: focal lesions are irregular ellipsoids (a signed distance perturbed by a smooth random
field) placed preferentially in the periphery, posteriorly and in the lower zones, clipped to
the lung (so subpleural lesions flatten against the pleura); diffuse lesions threshold a
large-scale random field plus posterior/lower/peripheral gradients at the quantile that
gives a requested fraction of the lung. Each lesion's opacity ``a`` ramps linearly over its
margin; the label is ``a >= 0.5``, so labels and intensities agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from scipy import ndimage as ndi

from segmentation.result import LesionLabel
from segmentation.synth.fields import band_lines, smooth_field
from segmentation.synth.targets import unseen_ggo

#: Label used in training targets for voxels whose true class is unknown (real nodules; lung
#: targets of slices that come without lung masks).
IGNORE_LABEL = 255
#: Lung-target label for voxels known to be lung of an unknown side (the labelled lesions of the
#: MedSeg slices, which have no lung masks): the lung head is taught P(right) + P(left) there.
ANY_LUNG_LABEL = 254


class Pattern(StrEnum):
    """Appearance of one lesion."""

    GGO = "ggo"
    CONSOLIDATION = "consolidation"
    MIXED = "mixed"
    CRAZY_PAVING = "crazy_paving"


@dataclass(frozen=True)
class FocalLesion:
    """An irregular ellipsoidal lesion.

    ``centre_zyx`` is in native voxel indices of the canonical array; ``axes`` scales the
    radius along (z, y, x); ``core`` is the consolidated fraction of the radius (mixed lesions).
    """

    centre_zyx: tuple[float, float, float]
    radius_mm: float
    axes: tuple[float, float, float]
    pattern: Pattern
    irregularity: float
    margin_mm: float
    core: float = 0.5
    """Mixed lesions: fraction of the radius that is consolidated (the rest is the GGO halo)."""


@dataclass(frozen=True)
class DiffuseLesion:
    """A large patchy lesion covering ``fraction`` of one or both lungs."""

    fraction: float
    side: int  # 0 both, 1 right, 2 left
    pattern: Pattern
    margin_mm: float
    posterior: float
    lower: float
    peripheral: float
    correlation_mm: float
    halo_mm: float = 5.0
    """Mixed lesions: thickness of the GGO halo around the consolidated part."""


@dataclass(frozen=True)
class LesionPlan:
    """Everything that decides one synthetic case's lesions (sampled by :func:`sample_plan`)."""

    focal: tuple[FocalLesion, ...] = ()
    diffuse: tuple[DiffuseLesion, ...] = ()
    ggo_hu: float = -550.0
    ggo_texture_hu: float = 50.0
    consolidation_hu: float = -20.0
    consolidation_texture_hu: float = 25.0
    paving_hu: float = 250.0
    paving_cell_mm: float = 10.0
    bronchograms: bool = True
    seed: int = 0

    @property
    def empty(self) -> bool:
        return not self.focal and not self.diffuse


@dataclass
class SynthesisResult:
    """A lesioned volume and its labels on the background's canonical grid."""

    hu: np.ndarray
    lesions: np.ndarray
    ggo_alpha: np.ndarray = field(repr=False)
    consolidation_alpha: np.ndarray = field(repr=False)
    unseen: np.ndarray | None = field(default=None, repr=False)
    """GGO-labelled voxels the rendering does not visibly raise (``segmentation.synth.targets``);
    ``None`` unless :func:`render` was asked for them."""


# --------------------------------------------------------------------------------------------
# plan sampling
# --------------------------------------------------------------------------------------------


class PlanKind(StrEnum):
    """Families of synthetic cases (the validation suite asks for each explicitly)."""

    NONE = "none"
    FOCAL = "focal"
    DIFFUSE = "diffuse"
    BORDER = "border"
    MIXED = "mixed"


def _coarse_maps(lungs: np.ndarray, spacing_zyx: tuple[float, float, float], coarse_mm: float = 4.0):
    """Lung mask and pleural distance (mm) on a coarse grid, with the step per axis."""
    steps = tuple(max(1, int(round(coarse_mm / s))) for s in spacing_zyx)
    small = lungs[:: steps[0], :: steps[1], :: steps[2]] > 0
    sampling = tuple(s * k for s, k in zip(spacing_zyx, steps, strict=True))
    dist = ndi.distance_transform_edt(small, sampling=sampling) if small.any() else np.zeros(small.shape)
    return small, dist, steps


def _pick_centre(
    rng: np.random.Generator,
    small: np.ndarray,
    dist: np.ndarray,
    steps: tuple[int, int, int],
    *,
    peripheral: float,
    posterior: float,
    lower: float,
    side_mask: np.ndarray | None = None,
) -> tuple[float, float, float]:
    zz, yy, _ = np.nonzero(small if side_mask is None else small & side_mask)
    if zz.size == 0:
        zz, yy, _ = np.nonzero(small)
    coords = np.stack(np.nonzero(small if side_mask is None else small & side_mask), axis=1)
    if coords.shape[0] == 0:
        coords = np.stack(np.nonzero(small), axis=1)
    d = dist[tuple(coords.T)]
    z = coords[:, 0] / max(1, small.shape[0] - 1)
    y = coords[:, 1] / max(1, small.shape[1] - 1)
    weight = np.exp(-d / 15.0) * peripheral + (1 - peripheral)
    weight *= 1.0 + posterior * y
    weight *= 1.0 + lower * (1.0 - z)
    weight /= weight.sum()
    pick = coords[rng.choice(coords.shape[0], p=weight)]
    jitter = rng.uniform(-0.5, 0.5, 3)
    return tuple(float((p + j) * k) for p, j, k in zip(pick, jitter, steps, strict=True))  # type: ignore[return-value]


def _random_pattern(rng: np.random.Generator) -> Pattern:
    return Pattern(rng.choice([p.value for p in Pattern], p=[0.42, 0.16, 0.26, 0.16]))


def sample_plan(
    rng: np.random.Generator,
    lungs: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    kind: PlanKind,
) -> LesionPlan:
    """A random lesion plan of a given family for a background with lung labels ``lungs``."""
    seed = int(rng.integers(2**31))
    common = dict(
        ggo_hu=float(rng.uniform(-750, -350)),
        ggo_texture_hu=float(rng.uniform(20, 80)),
        consolidation_hu=float(rng.uniform(-150, 60)),
        consolidation_texture_hu=float(rng.uniform(10, 35)),
        paving_hu=float(rng.uniform(150, 350)),
        paving_cell_mm=float(rng.uniform(6, 15)),
        bronchograms=bool(rng.random() < 0.7),
        seed=seed,
    )
    if kind is PlanKind.NONE:
        return LesionPlan(seed=seed)
    small, dist, steps = _coarse_maps(lungs, spacing_zyx)
    if not small.any():
        return LesionPlan(seed=seed)
    sides = lungs[:: steps[0], :: steps[1], :: steps[2]]
    focal: list[FocalLesion] = []
    diffuse: list[DiffuseLesion] = []

    def add_focal(n: int, *, r_lo: float, r_hi: float, peripheral: float, pattern: Pattern | None = None) -> None:
        for _ in range(n):
            side = int(rng.integers(1, 3))
            centre = _pick_centre(
                rng,
                small,
                dist,
                steps,
                peripheral=peripheral,
                posterior=float(rng.uniform(0.5, 2.0)),
                lower=float(rng.uniform(0.5, 2.0)),
                side_mask=sides == side,
            )
            chosen = pattern or _random_pattern(rng)
            focal.append(
                FocalLesion(
                    centre_zyx=centre,
                    radius_mm=float(np.exp(rng.uniform(np.log(r_lo), np.log(r_hi)))),
                    axes=tuple(float(v) for v in rng.uniform(0.6, 1.4, 3)),  # type: ignore[arg-type]
                    pattern=chosen,
                    irregularity=float(rng.uniform(0.1, 0.45)),
                    margin_mm=float(
                        rng.uniform(0.6, 1.5) if chosen is Pattern.CONSOLIDATION else rng.uniform(1.0, 4.0)
                    ),
                    core=float(rng.uniform(0.3, 0.7)),
                )
            )

    if kind is PlanKind.FOCAL:
        add_focal(int(rng.integers(1, 12)), r_lo=3.0, r_hi=45.0, peripheral=0.8)
    elif kind is PlanKind.DIFFUSE:
        for side in [0] if rng.random() < 0.5 else [1, 2]:
            pattern = _random_pattern(rng)
            diffuse.append(
                DiffuseLesion(
                    fraction=float(rng.uniform(0.05, 0.9)),
                    side=side,
                    pattern=pattern,
                    margin_mm=float(rng.uniform(1.0, 4.0)),
                    posterior=float(rng.uniform(0.0, 2.5)),
                    lower=float(rng.uniform(0.0, 2.5)),
                    peripheral=float(rng.uniform(0.0, 2.5)),
                    correlation_mm=float(rng.uniform(12.0, 40.0)),
                    halo_mm=float(rng.uniform(2.0, 15.0)),
                )
            )
        if rng.random() < 0.5:
            add_focal(int(rng.integers(1, 6)), r_lo=3.0, r_hi=25.0, peripheral=0.8)
    elif kind is PlanKind.BORDER:
        # Dense consolidation against the chest wall and the diaphragm (dependent, lower zones).
        for _ in range(int(rng.integers(1, 5))):
            side = int(rng.integers(1, 3))
            centre = _pick_centre(
                rng,
                small,
                np.where(dist > 6.0, 1e3, dist),
                steps,
                peripheral=1.0,
                posterior=3.0,
                lower=3.0,
                side_mask=sides == side,
            )
            focal.append(
                FocalLesion(
                    centre_zyx=centre,
                    radius_mm=float(rng.uniform(15.0, 70.0)),
                    axes=tuple(float(v) for v in rng.uniform(0.6, 1.4, 3)),  # type: ignore[arg-type]
                    pattern=Pattern.CONSOLIDATION if rng.random() < 0.6 else Pattern.MIXED,
                    irregularity=float(rng.uniform(0.1, 0.35)),
                    margin_mm=float(rng.uniform(0.6, 2.0)),
                    core=float(rng.uniform(0.5, 0.85)),
                )
            )
        if rng.random() < 0.5:
            add_focal(int(rng.integers(1, 5)), r_lo=5.0, r_hi=30.0, peripheral=0.8)
    elif kind is PlanKind.MIXED:
        add_focal(int(rng.integers(1, 6)), r_lo=3.0, r_hi=35.0, peripheral=0.8)
        diffuse.append(
            DiffuseLesion(
                fraction=float(rng.uniform(0.05, 0.5)),
                side=int(rng.integers(0, 3)),
                pattern=_random_pattern(rng),
                margin_mm=float(rng.uniform(1.0, 4.0)),
                posterior=float(rng.uniform(0.0, 2.5)),
                lower=float(rng.uniform(0.0, 2.5)),
                peripheral=float(rng.uniform(0.0, 2.5)),
                correlation_mm=float(rng.uniform(10.0, 30.0)),
                halo_mm=float(rng.uniform(2.0, 15.0)),
            )
        )
    return LesionPlan(focal=tuple(focal), diffuse=tuple(diffuse), **common)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _box_around(centre, half_mm, spacing_zyx, shape) -> tuple[slice, slice, slice]:
    return tuple(
        slice(max(0, int(np.floor(c - h / s))), min(n, int(np.ceil(c + h / s)) + 1))
        for c, h, s, n in zip(centre, half_mm, spacing_zyx, shape, strict=True)
    )  # type: ignore[return-value]


def _ramp(signed_mm: np.ndarray, margin_mm: float) -> np.ndarray:
    return np.clip(0.5 + signed_mm / (2.0 * margin_mm), 0.0, 1.0).astype(np.float32)


def render(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    plan: LesionPlan,
    *,
    unseen_rise_hu: float | None = None,
) -> SynthesisResult:
    """Apply ``plan`` to a canonical HU volume whose lungs are ``lungs`` (labels > 0).

    With ``unseen_rise_hu``, the result also marks the GGO-labelled voxels whose 2 mm
    neighbourhood the rendering raises by less than that many HU (:func:`~segmentation.synth.targets.unseen_ggo`).
    """
    hu = np.asarray(hu, dtype=np.float32)
    lung = lungs > 0
    shape = hu.shape
    ggo = np.zeros(shape, np.float32)
    cons = np.zeros(shape, np.float32)
    paving = np.zeros(shape, np.float32)
    rng = np.random.default_rng(plan.seed)
    unseen = None if unseen_rise_hu is None else np.zeros(shape, bool)
    if plan.empty or not lung.any():
        return SynthesisResult(hu.copy(), np.zeros(shape, np.uint8), ggo, cons, unseen)

    for lesion in plan.focal:
        half = [lesion.radius_mm * a * 1.6 + 3 * lesion.margin_mm for a in lesion.axes]
        box = _box_around(lesion.centre_zyx, half, spacing_zyx, shape)
        sub_shape = tuple(b.stop - b.start for b in box)
        if min(sub_shape) <= 0:
            continue
        grids = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]
        rho2 = sum(
            ((g - c) * s / (lesion.radius_mm * a)) ** 2
            for g, c, s, a in zip(grids, lesion.centre_zyx, spacing_zyx, lesion.axes, strict=True)
        )
        noise = smooth_field(sub_shape, spacing_zyx, correlation_mm=max(3.0, 0.6 * lesion.radius_mm), rng=rng)
        fine = smooth_field(sub_shape, spacing_zyx, correlation_mm=4.0, rng=rng)
        signed = (
            (1.0 - np.sqrt(rho2)) * lesion.radius_mm
            + lesion.irregularity * lesion.radius_mm * noise
            + min(2.5, 0.25 * lesion.radius_mm) * fine
        )
        halo_mm = (1.0 - lesion.core) * lesion.radius_mm
        _accumulate(lesion.pattern, signed, lesion.margin_mm, halo_mm, box, ggo, cons, paving)

    if plan.diffuse:
        box = _bbox(lung, margin=2)
        sub_lung = lungs[box]
        sub_shape = sub_lung.shape
        dist = _pleural_distance(sub_lung > 0, spacing_zyx)
        zc = np.linspace(1.0, 0.0, sub_shape[0], dtype=np.float32)[:, None, None]  # 1 at the bottom
        yc = np.linspace(0.0, 1.0, sub_shape[1], dtype=np.float32)[None, :, None]  # 1 at the back
        for lesion in plan.diffuse:
            noise = smooth_field(sub_shape, spacing_zyx, correlation_mm=lesion.correlation_mm, rng=rng)
            score = (
                noise + lesion.posterior * yc + lesion.lower * zc - lesion.peripheral * np.minimum(dist, 40.0) / 20.0
            )
            where = sub_lung > 0 if lesion.side == 0 else sub_lung == lesion.side
            if not where.any():
                continue
            threshold = float(np.quantile(score[where], 1.0 - lesion.fraction))
            # Score units -> mm: the field changes by about one unit over a correlation length.
            signed = (score - threshold) * lesion.correlation_mm * 0.5
            signed = np.where(where, signed, -1e3)
            halo_mm = lesion.halo_mm
            _accumulate(lesion.pattern, signed, lesion.margin_mm, halo_mm, box, ggo, cons, paving)

    ggo *= lung
    cons *= lung
    paving *= lung
    return _shade(hu, lung, spacing_zyx, plan, ggo, cons, paving, rng, unseen_rise_hu)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    coords = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    return tuple(
        slice(max(0, int(c[0]) - margin), min(mask.shape[ax], int(c[-1]) + margin + 1)) for ax, c in enumerate(coords)
    )  # type: ignore[return-value]


def _pleural_distance(lung: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) from each lung voxel to the lung boundary, computed on a ~4 mm grid."""
    import torch
    import torch.nn.functional as F

    steps = tuple(max(1, int(round(4.0 / s))) for s in spacing_zyx)
    small = lung[:: steps[0], :: steps[1], :: steps[2]]
    sampling = tuple(s * k for s, k in zip(spacing_zyx, steps, strict=True))
    dist = ndi.distance_transform_edt(small, sampling=sampling).astype(np.float32)
    up = F.interpolate(torch.from_numpy(dist)[None, None], size=lung.shape, mode="trilinear", align_corners=False)
    return up[0, 0].numpy()


def _accumulate(pattern, signed, margin_mm, halo_mm, box, ggo, cons, paving) -> None:
    outer = _ramp(signed, margin_mm)
    if pattern is Pattern.CONSOLIDATION:
        np.maximum(cons[box], outer, out=cons[box])
        np.maximum(ggo[box], outer, out=ggo[box])
    elif pattern is Pattern.MIXED:
        np.maximum(ggo[box], outer, out=ggo[box])
        inner = _ramp(signed - halo_mm, max(0.6, 0.5 * margin_mm))
        np.maximum(cons[box], inner, out=cons[box])
    elif pattern is Pattern.CRAZY_PAVING:
        np.maximum(ggo[box], outer, out=ggo[box])
        np.maximum(paving[box], outer, out=paving[box])
    else:
        np.maximum(ggo[box], outer, out=ggo[box])


def _shade(hu, lung, spacing_zyx, plan, ggo, cons, paving, rng, unseen_rise_hu=None) -> SynthesisResult:
    """Turn opacity maps into HU (see the module docstring) and labels."""
    region = (ggo > 0) | (cons > 0)
    out = hu.copy()
    labels = np.zeros(hu.shape, np.uint8)
    unseen = None if unseen_rise_hu is None else np.zeros(hu.shape, bool)
    if not region.any():
        return SynthesisResult(out, labels, ggo, cons, unseen)
    box = _bbox(region, margin=2)
    h = hu[box]
    sigma = [0.8 / s if s < 1.6 else 0.0 for s in spacing_zyx]
    background = ndi.gaussian_filter(h, sigma=sigma, mode="nearest")
    g, c, p = ggo[box], cons[box], paving[box]
    sub_shape = h.shape
    texture = smooth_field(sub_shape, spacing_zyx, correlation_mm=6.0, rng=rng)
    regional = smooth_field(sub_shape, spacing_zyx, correlation_mm=40.0, rng=rng)
    target = plan.ggo_hu + plan.ggo_texture_hu * texture + 60.0 * regional
    raise_ggo = g * np.maximum(0.0, target - background)
    shaded = h + raise_ggo
    if (p > 0).any():
        # Septal lines: zero-crossings of two band-limited fields give a polygonal mesh.
        lines = np.zeros(sub_shape, np.float32)
        for _ in range(2):
            cells = smooth_field(sub_shape, spacing_zyx, correlation_mm=plan.paving_cell_mm * 0.5, rng=rng)
            np.maximum(lines, band_lines(cells, 0.15), out=lines)
        shaded += p * lines * plan.paving_hu
    if (c > 0).any():
        solid = plan.consolidation_hu + plan.consolidation_texture_hu * smooth_field(
            sub_shape, spacing_zyx, correlation_mm=5.0, rng=rng
        )
        dense = np.maximum(solid, background)
        if plan.bronchograms:
            # Air bronchograms: the background's own airways stay aerated inside the consolidation,
            # plus random branching tubes (intersections of two zero-level sheets).
            sigma2 = [1.5 / s if s < 3.0 else 0.0 for s in spacing_zyx]
            airway = np.clip((-950.0 - ndi.gaussian_filter(h, sigma=sigma2, mode="nearest")) / 30.0, 0.0, 1.0)
            t1 = smooth_field(sub_shape, spacing_zyx, correlation_mm=15.0, rng=rng)
            t2 = smooth_field(sub_shape, spacing_zyx, correlation_mm=15.0, rng=rng)
            tubes = np.maximum(band_lines(t1, 0.15) * band_lines(t2, 0.15), airway)
            tubes *= np.clip((c - 0.9) * 10.0, 0.0, 1.0)
            dense = dense * (1.0 - tubes) + (-920.0) * tubes
        current_smooth = background + raise_ggo
        shaded += c * (dense - current_smooth)
    out[box] = shaded
    lab = np.zeros(sub_shape, np.uint8)
    lab[g >= 0.5] = LesionLabel.GGO
    lab[c >= 0.5] = LesionLabel.CONSOLIDATION
    lab[~lung[box]] = 0
    labels[box] = lab
    if unseen is not None:
        rise = np.maximum(shaded - h, 0.0)
        unseen[box] = unseen_ggo(
            rise, region[box] & lung[box], lab == LesionLabel.GGO, spacing_zyx, threshold_hu=unseen_rise_hu
        )
    return SynthesisResult(out, labels, ggo, cons, unseen)
