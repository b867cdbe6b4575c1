"""Fully synthetic thorax backgrounds for training (variety of body size, shape and sampling).

The real chest CTs on this machine are few (one complete chest per training run, plus slabs),
so some training cases are built on synthetic thoraxes from
:mod:`pipeline.synthetic.thorax`: analytic anatomy (body wall, ribs, mediastinum, branching
vessels and bronchi, diaphragm, abdomen) with *exact* lung labels, rendered without lesions and
with scanner-like noise. Lesions and the acquisition are then simulated on them exactly as on
the real backgrounds (:mod:`segmentation.synth.lesions`, :mod:`segmentation.synth.acquisition`).

Each phantom is fixed by its index and the training seed (``numpy.random.default_rng([seed,
PHANTOM_STREAM, index])``), so the training cache stays reproducible. Seeds of the demo
cohort's patients (101, 202, 303) are never used: the demo stays an unseen case.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from segmentation.grid import Canonical
from segmentation.synth.backgrounds import Background

#: Name prefix of phantom backgrounds in the training cache (``phantom-007``).
PHANTOM_PREFIX = "phantom-"
#: Separates the phantoms' random stream from the lesion/acquisition streams of the cache.
PHANTOM_STREAM = 7_919
#: Seeds of the demo cohort's anatomies (kept out of training).
DEMO_SEEDS = frozenset({101, 202, 303})


def phantom_name(index: int) -> str:
    return f"{PHANTOM_PREFIX}{index:03d}"


def is_phantom(name: str) -> bool:
    return name.startswith(PHANTOM_PREFIX)


def phantom_background(name: str, *, seed: int) -> Background:
    """The lesion-free synthetic thorax called ``name`` (see :func:`phantom_name`)."""
    from pipeline.synthetic.thorax import ThoraxSpec, build_thorax

    index = int(name[len(PHANTOM_PREFIX) :])
    rng = np.random.default_rng([seed, PHANTOM_STREAM, index])
    pixel = float(rng.uniform(0.65, 0.95))
    slice_mm = float(rng.choice([1.25, 2.0, 2.5]))
    scale = float(rng.uniform(0.85, 1.15))
    fov_mm = float(rng.uniform(340.0, 420.0)) * max(1.0, scale)
    side = int(round(fov_mm / pixel))
    side += side % 2
    n_slices = int(round(float(rng.uniform(290.0, 340.0)) * scale / slice_mm))
    anatomy_seed = int(rng.integers(1_000, 2**31))
    while anatomy_seed in DEMO_SEEDS:
        anatomy_seed += 1
    anatomy = build_thorax(
        ThoraxSpec(shape=(n_slices, side, side), spacing=(pixel, pixel, slice_mm), scale=scale, seed=anatomy_seed)
    )
    scan = anatomy.render(
        lesion_pct=0.0,
        noise_seed=int(rng.integers(2**31)),
        noise_hu=float(rng.uniform(8.0, 30.0)),
        air_noise_hu=float(rng.uniform(4.0, 12.0)),
    )
    hu = scan.hu.astype(np.float32)
    spacing_zyx = (slice_mm, pixel, pixel)
    image = sitk.GetImageFromArray(scan.hu)
    image.SetSpacing((pixel, pixel, slice_mm))
    image.SetOrigin(tuple(float(v) for v in scan.geometry.origin))
    # The phantom's arrays are canonical already (z to the head, y to the back, x to the left).
    canonical = Canonical.of(image)
    return Background(
        name=name,
        hu=hu,
        spacing_zyx=spacing_zyx,
        lungs=scan.lungs,
        nodules=np.zeros(hu.shape, bool),
        image=image,
        canonical=canonical,
    )
