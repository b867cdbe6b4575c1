"""The training-sample cache: synthetic cases pre-rendered on the working grid, outside the repository.

Layout (``<cache>/train-<key>/``)::

    index.json                 # parameters and one record per case
    case-0000/image.npy        # float16 (Z, H, W), normalised like the network input
    case-0000/lungs.npy        # uint8 LungLabel
    case-0000/lesions.npy      # uint8 LesionLabel, 255 = ignore (real nodules)

Every case draws its lesions and acquisition from ``numpy.random.default_rng([seed, index])``,
so the cache is identical for the same data, parameters and seed, whatever order it is built in.
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
from segmentation.synth.backgrounds import SOURCES, Background, DataRoot, Role, load_background
from segmentation.synth.lesions import PlanKind, sample_plan
from segmentation.training.cases import simulate_case, working_sample

log = logging.getLogger(__name__)

#: Bump when case generation changes (invalidates caches).
CACHE_VERSION = "train-2"

#: Share of each family of synthetic cases in the training set.
KIND_MIX: tuple[tuple[PlanKind, float], ...] = (
    (PlanKind.NONE, 0.12),
    (PlanKind.FOCAL, 0.28),
    (PlanKind.DIFFUSE, 0.25),
    (PlanKind.BORDER, 0.20),
    (PlanKind.MIXED, 0.15),
)


@dataclass(frozen=True)
class CaseRecord:
    """One cached training case."""

    folder: str
    background: str
    kind: str
    acquisition: str
    lesion_fraction: float
    shape: tuple[int, int, int]


def cache_key(params: PreprocessParameters, n_cases: int, seed: int) -> str:
    text = json.dumps({"v": CACHE_VERSION, "p": params.to_dict(), "n": n_cases, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def assign_backgrounds(n_cases: int) -> list[str]:
    """Deterministic background of each case, proportional to the sources' weights."""
    train = [s for s in SOURCES if s.role is Role.TRAIN]
    weights = np.array([s.weight for s in train], float)
    counts = np.floor(weights / weights.sum() * n_cases).astype(int)
    counts[0] += n_cases - counts.sum()
    names: list[str] = []
    for s, count in zip(train, counts, strict=True):
        names += [s.name] * int(count)
    return names


def build_training_cache(
    *,
    data_root: Path,
    cache_dir: Path,
    params: PreprocessParameters,
    n_cases: int,
    seed: int,
) -> Path:
    """Render ``n_cases`` synthetic training cases (skipping those already cached); return the folder."""
    folder = Path(cache_dir) / f"train-{cache_key(params, n_cases, seed)}"
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    if index_path.exists():
        return folder
    data = DataRoot(data_root)
    names = assign_backgrounds(n_cases)
    backgrounds: dict[str, Background] = {}
    records: list[dict] = []
    kinds = [k for k, _ in KIND_MIX]
    probabilities = np.array([p for _, p in KIND_MIX])
    start = time.monotonic()
    for index, name in enumerate(names):
        case_dir = folder / f"case-{index:04d}"
        meta_path = case_dir / "meta.json"
        if meta_path.exists():
            records.append(json.loads(meta_path.read_text()))
            continue
        if name not in backgrounds:
            from segmentation.synth.backgrounds import source

            backgrounds[name] = load_background(source(name), data, cache_dir)
        background = backgrounds[name]
        rng = np.random.default_rng([seed, index])
        kind = kinds[int(rng.choice(len(kinds), p=probabilities / probabilities.sum()))]
        plan = sample_plan(rng, background.lungs, background.spacing_zyx, kind)
        acq = sample_acquisition(rng, background.spacing_zyx[0])
        series = simulate_case(background, plan, acq)
        image, lungs, lesions, _ = working_sample(series, params)
        case_dir.mkdir(exist_ok=True)
        for file, array in (("image.npy", image.astype(np.float16)), ("lungs.npy", lungs), ("lesions.npy", lesions)):
            with atomic_path(case_dir / file) as tmp:
                np.save(tmp, array, allow_pickle=False)
        lung_voxels = int((series.native_lungs > 0).sum())
        fraction = float((series.native_lesions > 0).sum() / lung_voxels) if lung_voxels else 0.0
        record = {
            "folder": case_dir.name,
            "background": name,
            "kind": kind.value,
            "acquisition": acq.describe(),
            "lesion_fraction": round(fraction, 5),
            "shape": list(image.shape),
        }
        write_text_atomic(meta_path, json.dumps(record))
        records.append(record)
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
    index_doc = {"version": CACHE_VERSION, "params": params.to_dict(), "seed": seed, "cases": records}
    write_text_atomic(index_path, json.dumps(index_doc, indent=1))
    return folder
