"""The synthetic validation set: lesions of every size and pattern in a background held out of training.

Each case is written as NIfTI files in the layout ``lunglesion evaluate`` reads::

    <folder>/<case>_ct.nii.gz        # int16 HU, on the simulated acquisition grid
    <folder>/<case>_lungs.nii.gz     # reference: 1 right lung, 2 left lung
    <folder>/<case>_lesions.nii.gz   # reference: 1 GGO, 2 consolidation
    <folder>/<case>_ignore.nii.gz    # 1 = not scored: the background's real findings, unseen GGO (if any)
    <folder>/cases.json              # what each case contains

The cases are fixed (explicit lesion plans and acquisitions, fixed seeds), so every model
is compared on the same volumes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.io.atomic import atomic_path, write_text_atomic
from segmentation.synth.acquisition import Acquisition
from segmentation.synth.backgrounds import Background, DataRoot, load_background, source
from segmentation.synth.lesions import (
    DiffuseLesion,
    FocalLesion,
    LesionPlan,
    Pattern,
    PlanKind,
    _coarse_maps,
    _pick_centre,
    sample_plan,
)
from segmentation.synth.targets import Targets
from segmentation.training.cases import acquired_case, acquired_ignore, simulate_case

log = logging.getLogger(__name__)

#: val-2: the same cases as val-1 (identical volumes and labels) plus ``<case>_ignore`` files
#: where the background has real findings (the mass in the dlwpt chest). val-3 (``visible``
#: targets): the same volumes and labels again; the ignore files also hold the unseen GGO and
#: the findings declared for that rule (``segmentation.synth.targets``).
VALIDATION_VERSIONS = {Targets.OPACITY: "val-2", Targets.VISIBLE: "val-3"}


@dataclass(frozen=True)
class ValidationSpec:
    name: str
    build: Callable[[Background, np.random.Generator], LesionPlan]
    thickness_mm: float | None = None  # None: native
    smooth_mm: float = 0.0
    noise_hu: float = 0.0
    border: bool = False
    """Consolidation covers the lung border (the case family where threshold methods fail)."""


def _focal(bg: Background, rng, n: int, r: tuple[float, float], pattern: Pattern | None, **kw) -> tuple:
    small, dist, steps = _coarse_maps(bg.lungs, bg.spacing_zyx)
    sides = bg.lungs[:: steps[0], :: steps[1], :: steps[2]]
    out = []
    for i in range(n):
        side = kw.get("side") or (1 + i % 2)
        d = np.where(dist > 6.0, 1e3, dist) if kw.get("border") else dist
        centre = _pick_centre(
            rng,
            small,
            d,
            steps,
            peripheral=kw.get("peripheral", 0.8),
            posterior=kw.get("posterior", 1.5),
            lower=kw.get("lower", 1.5),
            side_mask=sides == side,
        )
        chosen = pattern or Pattern(rng.choice([p.value for p in Pattern]))
        out.append(
            FocalLesion(
                centre_zyx=centre,
                radius_mm=float(rng.uniform(*r)),
                axes=tuple(float(v) for v in rng.uniform(0.7, 1.3, 3)),  # type: ignore[arg-type]
                pattern=chosen,
                irregularity=float(rng.uniform(0.15, 0.35)),
                margin_mm=1.0 if chosen is Pattern.CONSOLIDATION else float(rng.uniform(1.5, 3.0)),
                core=float(rng.uniform(0.4, 0.7)),
            )
        )
    return tuple(out)


def _diffuse(fraction: float, side: int, pattern: Pattern, corr: float = 25.0) -> DiffuseLesion:
    return DiffuseLesion(
        fraction=fraction,
        side=side,
        pattern=pattern,
        margin_mm=2.5,
        posterior=1.5,
        lower=1.5,
        peripheral=1.2,
        correlation_mm=corr,
        halo_mm=6.0,
    )


def _plan(rng, *, focal=(), diffuse=(), **kw) -> LesionPlan:
    return LesionPlan(focal=tuple(focal), diffuse=tuple(diffuse), seed=int(rng.integers(2**31)), **kw)


SPECS: tuple[ValidationSpec, ...] = (
    ValidationSpec("healthy", lambda bg, rng: _plan(rng)),
    ValidationSpec("healthy-5mm", lambda bg, rng: _plan(rng), thickness_mm=5.0),
    ValidationSpec("healthy-soft", lambda bg, rng: _plan(rng), smooth_mm=0.8),
    ValidationSpec("tiny-ggo", lambda bg, rng: _plan(rng, focal=_focal(bg, rng, 4, (3.0, 7.0), Pattern.GGO))),
    ValidationSpec("small-focal", lambda bg, rng: _plan(rng, focal=_focal(bg, rng, 6, (6.0, 15.0), None))),
    ValidationSpec("multifocal", lambda bg, rng: _plan(rng, focal=_focal(bg, rng, 10, (8.0, 30.0), None))),
    ValidationSpec(
        "multifocal-8mm", lambda bg, rng: _plan(rng, focal=_focal(bg, rng, 10, (8.0, 30.0), None)), thickness_mm=8.0
    ),
    ValidationSpec("ggo-diffuse-15", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.15, 0, Pattern.GGO)])),
    ValidationSpec("ggo-diffuse-50", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.5, 0, Pattern.GGO)])),
    ValidationSpec("ggo-faint-30", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.3, 0, Pattern.GGO)], ggo_hu=-700.0)),
    ValidationSpec("ggo-dense-30", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.3, 0, Pattern.GGO)], ggo_hu=-400.0)),
    ValidationSpec("crazy-paving-30", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.3, 0, Pattern.CRAZY_PAVING)])),
    ValidationSpec("consolidation-20", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.2, 0, Pattern.CONSOLIDATION)])),
    ValidationSpec("mixed-40", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.4, 0, Pattern.MIXED)])),
    ValidationSpec(
        "mixed-40-5mm", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.4, 0, Pattern.MIXED)]), thickness_mm=5.0
    ),
    ValidationSpec(
        "mixed-40-soft", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.4, 0, Pattern.MIXED)]), smooth_mm=0.8
    ),
    ValidationSpec("right-most-85", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.85, 1, Pattern.MIXED, corr=35.0)])),
    ValidationSpec("left-most-85", lambda bg, rng: _plan(rng, diffuse=[_diffuse(0.85, 2, Pattern.GGO, corr=35.0)])),
    ValidationSpec(
        "border-right",
        lambda bg, rng: _plan(
            rng,
            focal=_focal(
                bg, rng, 2, (35.0, 55.0), Pattern.CONSOLIDATION, side=1, border=True, posterior=3.0, lower=3.0
            ),
        ),
        border=True,
    ),
    ValidationSpec(
        "border-left",
        lambda bg, rng: _plan(
            rng,
            focal=_focal(
                bg, rng, 2, (35.0, 55.0), Pattern.CONSOLIDATION, side=2, border=True, posterior=3.0, lower=3.0
            ),
        ),
        border=True,
    ),
    ValidationSpec(
        "border-bilateral-mixed",
        lambda bg, rng: _plan(
            rng, focal=_focal(bg, rng, 4, (25.0, 50.0), Pattern.MIXED, border=True, posterior=3.0, lower=3.0)
        ),
        border=True,
    ),
    ValidationSpec(
        "border-5mm",
        lambda bg, rng: _plan(
            rng, focal=_focal(bg, rng, 3, (30.0, 50.0), Pattern.CONSOLIDATION, border=True, posterior=3.0, lower=3.0)
        ),
        thickness_mm=5.0,
        border=True,
    ),
    ValidationSpec("random-focal", lambda bg, rng: sample_plan(rng, bg.lungs, bg.spacing_zyx, PlanKind.FOCAL)),
    ValidationSpec("random-diffuse", lambda bg, rng: sample_plan(rng, bg.lungs, bg.spacing_zyx, PlanKind.DIFFUSE)),
    ValidationSpec("random-mixed", lambda bg, rng: sample_plan(rng, bg.lungs, bg.spacing_zyx, PlanKind.MIXED)),
)


def build_validation_set(
    *,
    data_root: Path,
    cache_dir: Path,
    background: str = "dlwpt",
    seed: int = 1234,
    targets: Targets = Targets.OPACITY,
) -> Path:
    """Write the validation cases (once) and return their folder.

    ``targets`` decides what the ``_ignore`` files leave out of scoring
    (:data:`VALIDATION_VERSIONS`); the volumes and labels are the same under every rule.
    """
    folder = Path(cache_dir) / f"validation-{background}-{VALIDATION_VERSIONS[targets]}-{seed}"
    done = folder / "cases.json"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    bg = load_background(source(background), DataRoot(data_root), cache_dir, targets=targets)
    records = []
    for index, spec in enumerate(SPECS):
        rng = np.random.default_rng([seed, index])
        plan = spec.build(bg, rng)
        acq = Acquisition(
            thickness_mm=spec.thickness_mm or bg.spacing_zyx[0],
            smooth_mm=spec.smooth_mm,
            sharpen=0.0,
            noise_hu=spec.noise_hu,
            noise_mm=0.5,
            z_offset=0.0,
            seed=int(rng.integers(2**31)),
        )
        series = simulate_case(bg, plan, acq, targets=targets)
        image, lungs, lesions = acquired_case(series, bg)
        ignore = acquired_ignore(series, bg)
        files = [("ct", image), ("lungs", lungs), ("lesions", lesions)]
        if ignore is not None:
            files.append(("ignore", ignore))
        for suffix, img in files:
            with atomic_path(folder / f"{spec.name}_{suffix}.nii.gz") as tmp:
                sitk.WriteImage(img, str(tmp), useCompression=True)
        lung = sitk.GetArrayViewFromImage(lungs) > 0
        lung_n = int(lung.sum())
        les = sitk.GetArrayViewFromImage(lesions)
        ignored = 0 if ignore is None else int(((sitk.GetArrayViewFromImage(ignore) > 0) & lung).sum())
        record = {
            "case": spec.name,
            "background": background,
            "thickness_mm": series.thickness_mm,
            "border": spec.border,
            "lesion_fraction": float((les > 0).sum() / max(1, lung_n)),
            "ggo_fraction": float((les == 1).sum() / max(1, lung_n)),
            "consolidation_fraction": float((les == 2).sum() / max(1, lung_n)),
            "ignored_lung_fraction": float(ignored / max(1, lung_n)),
        }
        records.append(record)
        log.info("validation case %s: lesions %.1f %% of lung", spec.name, 100 * record["lesion_fraction"])
    write_text_atomic(done, json.dumps(records, indent=1))
    return folder
