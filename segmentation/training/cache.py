"""The training-sample cache: synthetic cases pre-rendered on the working grid, outside the repository.

Layout (``<cache>/train-<key>/``)::

    index.json                 # parameters and one record per case
    case-0000/image.npy        # float16 (Z, H, W), normalised like the network input
    case-0000/lungs.npy        # uint8 LungLabel
    case-0000/lesions.npy      # uint8 LesionLabel, 255 = ignore (real nodules; unseen GGO under ``visible`` targets)

Every case draws its lesions and acquisition from ``numpy.random.default_rng([seed, index])``,
so the cache is identical for the same data, parameters and seed, whatever order it is built in.

Lung-free negative cases (``<cache>/negatives-<key>/``, same layout, kind ``no-lung``) are slabs of
real CT below the lungs (:mod:`segmentation.synth.negatives`) rendered with a sampled acquisition
and labelled background everywhere; they draw from ``default_rng([seed, NEGATIVE_STREAM, index])``
so adding them never changes a chest case.

The MedSeg cache (``<cache>/medseg-<key>/``, kind ``medseg``) holds the trainable half of the
MedSeg COVID-19 slices (:func:`segmentation.synth.medseg.split_medseg`), one working slice per
case: approximate HU, lesion targets from the radiologists' labels, and lung targets
``ANY_LUNG_LABEL`` on those lesions (a lesion is lung, of a side the slice does not say) and
``IGNORE_LABEL`` elsewhere (MedSeg has no lung masks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.atomic import atomic_path, write_text_atomic
from segmentation.preprocess import PreprocessParameters
from segmentation.synth.acquisition import sample_acquisition
from segmentation.synth.backgrounds import (
    Background,
    DataRoot,
    declared_findings,
    load_background,
    source,
    training_sources,
)
from segmentation.synth.crops import CROP_MASK_VERSION
from segmentation.synth.lesions import LesionPlan, PlanKind, sample_plan
from segmentation.synth.negatives import NEGATIVE_KIND, NEGATIVE_SOURCES, load_negative
from segmentation.synth.phantom_backgrounds import is_phantom, phantom_background, phantom_name
from segmentation.synth.targets import Targets
from segmentation.training.cases import simulate_case, working_sample

log = logging.getLogger(__name__)

#: Bump when case generation changes (invalidates caches).
CACHE_VERSION = "train-3"
#: Family of the MedSeg training slices in the cache index (``kind_weights`` does not apply to them).
MEDSEG_KIND = "medseg"
#: Separates the negative cases' random stream from the chest cases' ``[seed, index]`` streams.
NEGATIVE_STREAM = 4_241

#: Share of each family of synthetic cases in the training set. Border cases (dense
#: consolidation against the chest wall and diaphragm) are over-represented: they are where a
#: segmenter cuts diseased lung out, the failure this model exists to avoid.
KIND_MIX: tuple[tuple[PlanKind, float], ...] = (
    (PlanKind.NONE, 0.12),
    (PlanKind.FOCAL, 0.25),
    (PlanKind.DIFFUSE, 0.25),
    (PlanKind.BORDER, 0.23),
    (PlanKind.MIXED, 0.15),
)

#: Weight of the synthetic thorax phantoms next to the real backgrounds' weights (the complete
#: real chest has 1.0): about a quarter of the cases.
PHANTOM_WEIGHT = 0.55
#: Training cases rendered on each phantom anatomy (different lesions and acquisitions).
CASES_PER_PHANTOM = 3


@dataclass(frozen=True)
class CaseRecord:
    """One cached training case."""

    folder: str
    background: str
    kind: str
    acquisition: str
    lesion_fraction: float
    shape: tuple[int, int, int]


def cache_key(
    params: PreprocessParameters,
    n_cases: int,
    seed: int,
    holdout: str = "dlwpt",
    targets: Targets = Targets.OPACITY,
    extra: tuple[str, ...] = (),
) -> str:
    identity: dict = {"v": CACHE_VERSION, "p": params.to_dict(), "n": n_cases, "seed": seed}
    if extra:  # (absent without extra backgrounds: earlier keys stay valid)
        # Their definition, not only their names: a changed mask rule or weight is a new training set.
        identity["extra"] = [[s.name, s.weight, s.unknown_dense_hu, CROP_MASK_VERSION] for s in map(source, extra)]
    if holdout != "dlwpt":  # (caches built before the hold-out became a setting keep their key)
        identity["holdout"] = holdout
    if targets is not Targets.OPACITY:  # (likewise for caches built before the target rules)
        identity["targets"] = targets.value
    # Declared real findings change a training background's targets (ignored in the lesion loss).
    findings = {
        item.name: [[f.description, list(f.centre_lps_mm), f.radius_mm] for f in declared]
        for item in training_sources(holdout, extra)
        if (declared := declared_findings(item, targets))
    }
    if findings:  # (absent when no training background declares any: earlier keys stay valid)
        identity["findings"] = findings
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def assign_backgrounds(n_cases: int, holdout: str = "dlwpt", extra: tuple[str, ...] = ()) -> list[str]:
    """Deterministic background of each case, proportional to the sources' weights.

    Real backgrounds come first (``extra`` ones last), then the phantoms (``phantom-000``, ...
    each used for :data:`CASES_PER_PHANTOM` consecutive cases), so cases of one background are contiguous.
    """
    train = training_sources(holdout, extra)
    weights = np.array([s.weight for s in train] + [PHANTOM_WEIGHT], float)
    counts = np.floor(weights / weights.sum() * n_cases).astype(int)
    counts[0] += n_cases - counts.sum()
    names: list[str] = []
    for s, count in zip(train, counts[:-1], strict=True):
        names += [s.name] * int(count)
    names += [phantom_name(i // CASES_PER_PHANTOM) for i in range(int(counts[-1]))]
    return names


def _load(name: str, data: DataRoot, cache_dir: Path, seed: int, targets: Targets) -> Background:
    if is_phantom(name):
        return phantom_background(name, seed=seed)
    return load_background(source(name), data, cache_dir, targets=targets)


def _finished_case(case_dir: Path) -> dict | None:
    """The record of a case an earlier (interrupted) build already wrote, or ``None``."""
    meta_path = case_dir / "meta.json"
    return json.loads(meta_path.read_text()) if meta_path.exists() else None


def _store_case(case_dir: Path, image: np.ndarray, lungs: np.ndarray, lesions: np.ndarray, **fields) -> dict:
    """Write one case's arrays, then its ``meta.json`` (last, so a case with a record is complete).

    Returns the record: ``folder``, then ``fields`` in their order, then the array ``shape``.
    """
    case_dir.mkdir(exist_ok=True)
    for file, array in (("image.npy", image.astype(np.float16)), ("lungs.npy", lungs), ("lesions.npy", lesions)):
        with atomic_path(case_dir / file) as tmp:
            np.save(tmp, array, allow_pickle=False)
    record = {"folder": case_dir.name, **fields, "shape": list(image.shape)}
    write_text_atomic(case_dir / "meta.json", json.dumps(record))
    return record


def build_training_cache(
    *,
    data_root: Path,
    cache_dir: Path,
    params: PreprocessParameters,
    n_cases: int,
    seed: int,
    holdout: str = "dlwpt",
    targets: Targets = Targets.OPACITY,
    extra: tuple[str, ...] = (),
) -> Path:
    """Render ``n_cases`` synthetic training cases (skipping those already cached); return the folder.

    ``holdout`` is the complete chest CT kept out of training (for validation); ``targets``
    the rule for what the lesion targets leave out (:mod:`segmentation.synth.targets`);
    ``extra`` the optional backgrounds added (:data:`~segmentation.synth.backgrounds.EXTRAS`).
    """
    folder = Path(cache_dir) / f"train-{cache_key(params, n_cases, seed, holdout, targets, extra)}"
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    if index_path.exists():
        return folder
    data = DataRoot(data_root)
    names = assign_backgrounds(n_cases, holdout, extra)
    backgrounds: dict[str, Background] = {}
    records: list[dict] = []
    kinds = [k for k, _ in KIND_MIX]
    probabilities = np.array([p for _, p in KIND_MIX])
    start = time.monotonic()
    for index, name in enumerate(names):
        case_dir = folder / f"case-{index:04d}"
        if (done := _finished_case(case_dir)) is not None:
            records.append(done)
            continue
        if name not in backgrounds:
            backgrounds.clear()  # cases of one background are contiguous: keep one in memory
            backgrounds[name] = _load(name, data, cache_dir, seed, targets)
        background = backgrounds[name]
        rng = np.random.default_rng([seed, index])
        kind = kinds[int(rng.choice(len(kinds), p=probabilities / probabilities.sum()))]
        plan = sample_plan(rng, background.lungs, background.spacing_zyx, kind)
        acq = sample_acquisition(rng, background.spacing_zyx[0])
        series = simulate_case(background, plan, acq, targets=targets)
        image, lungs, lesions, _ = working_sample(series, params)
        lung_voxels = int((series.native_lungs > 0).sum())
        fraction = float((series.native_lesions > 0).sum() / lung_voxels) if lung_voxels else 0.0
        records.append(
            _store_case(
                case_dir,
                image,
                lungs,
                lesions,
                background=name,
                kind=kind.value,
                acquisition=acq.describe(),
                lesion_fraction=round(fraction, 5),
            )
        )
        log.info(
            "training case %d/%d (%s, %s, %s, lesions %.1f %%) %.0f s",
            index + 1,
            n_cases,
            name,
            kind.value,
            acq.describe(),
            100 * fraction,
            time.monotonic() - start,
        )
    index_doc = {
        "version": CACHE_VERSION,
        "params": params.to_dict(),
        "seed": seed,
        "holdout": holdout,
        "targets": targets.value,
        "cases": records,
    }
    write_text_atomic(index_path, json.dumps(index_doc, indent=1))
    return folder


def negative_cache_key(params: PreprocessParameters, n_cases: int, seed: int) -> str:
    identity = {
        "v": CACHE_VERSION,
        "p": params.to_dict(),
        "n": n_cases,
        "seed": seed,
        "sources": [[s.name, s.relative, s.first_slice, s.stop_slice] for s in NEGATIVE_SOURCES],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def build_negative_cache(
    *,
    data_root: Path,
    cache_dir: Path,
    params: PreprocessParameters,
    n_cases: int,
    seed: int,
) -> Path:
    """Render ``n_cases`` lung-free training cases (:mod:`segmentation.synth.negatives`); return the folder.

    The cases cycle through :data:`~segmentation.synth.negatives.NEGATIVE_SOURCES`; each draws
    its acquisition (slice thickness, kernel, noise) from ``numpy.random.default_rng([seed,
    NEGATIVE_STREAM, index])``. Lung and lesion targets are background everywhere. The folder
    (``<cache>/negatives-<key>/``) has the layout of the training cache, family ``no-lung``.
    """
    folder = Path(cache_dir) / f"negatives-{negative_cache_key(params, n_cases, seed)}"
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    if index_path.exists():
        return folder
    data = DataRoot(data_root)
    backgrounds: dict[str, Background] = {}
    records: list[dict] = []
    for index in range(n_cases):
        item = NEGATIVE_SOURCES[index % len(NEGATIVE_SOURCES)]
        case_dir = folder / f"case-{index:04d}"
        if (done := _finished_case(case_dir)) is not None:
            records.append(done)
            continue
        if item.name not in backgrounds:
            backgrounds[item.name] = load_negative(item, data)
        background = backgrounds[item.name]
        rng = np.random.default_rng([seed, NEGATIVE_STREAM, index])
        acq = sample_acquisition(rng, background.spacing_zyx[0])
        series = simulate_case(background, LesionPlan(seed=int(rng.integers(2**31))), acq)
        image, lungs, lesions, _ = working_sample(series, params)
        records.append(
            _store_case(
                case_dir,
                image,
                lungs,
                lesions,
                background=item.name,
                kind=NEGATIVE_KIND,
                acquisition=acq.describe(),
                lesion_fraction=0.0,
            )
        )
        log.info("negative case %d/%d (%s, %s)", index + 1, n_cases, item.name, acq.describe())
    index_doc = {"version": CACHE_VERSION, "params": params.to_dict(), "seed": seed, "cases": records}
    write_text_atomic(index_path, json.dumps(index_doc, indent=1))
    return folder


def build_medseg_cache(*, data_root: Path, cache_dir: Path, params: PreprocessParameters) -> Path:
    """Working-grid samples of the trainable MedSeg half; return the folder.

    Each slice becomes a one-slice series (2.5 mm thick, the assumed 0.75 mm pixels) resampled
    like any scan; its lung targets are ``ANY_LUNG_LABEL`` on the labelled lesions and
    ``IGNORE_LABEL`` elsewhere. Deterministic: no random numbers are drawn.
    """
    from segmentation.result import LesionLabel
    from segmentation.synth.lesions import ANY_LUNG_LABEL, IGNORE_LABEL
    from segmentation.synth.medseg import ASSUMED_SPACING_MM, load_medseg, split_medseg
    from segmentation.training.cases import SimulatedSeries

    slices, _ = split_medseg(load_medseg(DataRoot(data_root).dataset("medseg-covid-2d-train")))
    identity = {"v": CACHE_VERSION, "p": params.to_dict(), "slices": [item.name for item in slices], "lung": "lesions"}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache_dir) / f"medseg-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    if index_path.exists():
        return folder
    spacing = (2.5, ASSUMED_SPACING_MM, ASSUMED_SPACING_MM)
    records: list[dict] = []
    for index, item in enumerate(slices):
        hu = np.clip(item.hu, -1024.0, 3071.0)[None].astype(np.float32)
        labels = item.labels[None]
        series = SimulatedSeries(
            hu=hu,
            spacing_zyx=spacing,
            z_positions=np.zeros(1),
            thickness_mm=spacing[0],
            native_lungs=np.zeros(hu.shape, np.uint8),
            native_lesions=labels,
            native_ignore=np.zeros(hu.shape, bool),
            native_spacing_zyx=spacing,
        )
        image, _, lesions, _ = working_sample(series, params)
        lungs = np.full(lesions.shape, IGNORE_LABEL, np.uint8)
        lungs[(lesions == LesionLabel.GGO) | (lesions == LesionLabel.CONSOLIDATION)] = ANY_LUNG_LABEL
        fraction = float((item.labels > 0).mean())  # of the slice: MedSeg has no lung mask
        records.append(
            _store_case(
                folder / f"case-{index:04d}",
                image,
                lungs,
                lesions,
                background="medseg",
                kind=MEDSEG_KIND,
                slice=item.name,
                lesion_fraction_of_slice=round(fraction, 4),
            )
        )
    index_doc = {"version": CACHE_VERSION, "params": params.to_dict(), "cases": records}
    write_text_atomic(index_path, json.dumps(index_doc, indent=1))
    log.info("MedSeg training slices: %d cached in %s", len(records), folder)
    return folder
