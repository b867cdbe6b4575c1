"""``lunglesion train`` end to end: data -> cache -> training -> model files.

The default run reproduces the shipped model: it builds the training cache from the real
backgrounds (``../shared/data`` or ``--data-root``), the validation set from the held-out
background, trains with the configured seed and writes ``<model_id>.pt`` + ``.json``.
With a folder of user images and labels it fine-tunes the shipped (or given) model instead.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segmentation.network import NetworkSpec
from segmentation.postprocess import Cleanup
from segmentation.preprocess import PreprocessParameters, resample_to_working, to_working
from segmentation.settings import SegmentationSettings, TrainingSettings
from segmentation.synth.backgrounds import CHESTS
from segmentation.synth.targets import Targets
from segmentation.training.checkpoint import Checkpointing, checkpoint_path, refuse_unfinished, remove_checkpoint
from segmentation.training.train import CachedCase, TrainConfig, config_dict, open_cache, train_network

log = logging.getLogger(__name__)

#: Architecture and preprocessing of the shipped model (chosen by the comparison in MODEL_CARD.md).
DEFAULT_ARCHITECTURE = NetworkSpec(
    in_channels=5, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=1, norm="batch"
)
DEFAULT_PREPROCESSING = PreprocessParameters(
    spacing_zyx_mm=(2.5, 1.75, 1.75),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=5.0,
    size_multiple=16,
    context_offsets=(-2, -1, 0, 1, 2),
)

#: Validation cases followed during training (working-grid Dice in the log and the model JSON).
MONITOR_CASES = ("healthy", "multifocal", "mixed-40", "border-right", "ggo-diffuse-50", "consolidation-20")


@dataclass(frozen=True)
class TrainOutcome:
    model_json: Path
    seconds: float
    history: list[dict]


def train_config(
    settings: TrainingSettings, *, steps: int | None = None, learning_rate: float | None = None
) -> TrainConfig:
    return TrainConfig(
        steps=steps or settings.steps,
        batch_size=settings.batch_size,
        learning_rate=learning_rate or settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=min(settings.warmup_steps, (steps or settings.steps) // 5),
        crop=tuple(settings.crop),  # type: ignore[arg-type]
        lesion_weight=settings.lesion_weight,
        consolidated_lung_weight=settings.consolidated_lung_weight,
        augment_strength=settings.augment_strength,
        augmentation=settings.augmentation,
        lung_slice_fraction=settings.lung_slice_fraction,
        lesion_slice_fraction=settings.lesion_slice_fraction,
        mirror_probability=settings.mirror_probability,
        seed=settings.seed,
        threads=settings.threads,
        validate_every=settings.validate_every,
    )


def with_share(cases: list[CachedCase], extra: list[CachedCase], share: float) -> list[CachedCase]:
    """``cases + extra``, the ``extra`` cases reweighted to be drawn for ``share`` of the slices (alike)."""
    if not extra:
        return list(cases)
    each = share / (1.0 - share) * sum(c.weight for c in cases) / len(extra)
    return [*cases, *(dataclasses.replace(c, weight=each) for c in extra)]


def monitoring_samples(folder: Path, params: PreprocessParameters, names=MONITOR_CASES):
    """Working-grid inputs and targets of some validation cases (from their NIfTI files)."""
    from segmentation.grid import canonical_array

    samples = []
    for name in names:
        ct = folder / f"{name}_ct.nii.gz"
        if not ct.exists():
            continue
        image = sitk.ReadImage(str(ct))
        hu, canon = canonical_array(image, dtype=np.float32)
        working, grid = to_working(hu, canon.spacing_zyx, params)
        targets = []
        for suffix in ("lungs", "lesions"):
            labels = canon.forward(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{name}_{suffix}.nii.gz"))))
            soft = [resample_to_working((labels == k).view(np.uint8), grid, fill=0.0) for k in (1, 2)]
            rest = np.clip(1.0 - soft[0] - soft[1], 0, None)
            targets.append(np.argmax(np.stack([rest, *soft]), axis=0).astype(np.uint8))
        samples.append((name, working, targets[0], targets[1]))
    return samples


@dataclass(frozen=True)
class StartingPoint:
    """What training starts from: random weights (``state_dict`` None) or a saved model's."""

    architecture: NetworkSpec
    preprocessing: PreprocessParameters
    state_dict: dict | None
    origin: str | dict
    """``"scratch"`` or the starting model's ``{"model_id", "sha256"}`` (recorded in the new JSON)."""


def starting_point(
    init_from: Path | None, *, architecture: NetworkSpec, preprocessing: PreprocessParameters
) -> StartingPoint:
    """Random weights of ``architecture``, or the checksum-verified model at ``init_from`` (its own design)."""
    if init_from is None:
        return StartingPoint(architecture, preprocessing, None, "scratch")
    from segmentation.weights import load_state_dict, read_description

    base = read_description(init_from)
    state = load_state_dict(base)
    origin: dict = {"model_id": base.model_id, "sha256": base.sha256}
    earlier = base.metadata.get("training", {}).get("from")
    if isinstance(earlier, dict):  # the stages before it, so that every one of them can be recognised
        origin["from"] = earlier
    return StartingPoint(base.architecture, base.preprocessing, state, origin)


def train_default_model(
    *,
    data_root: Path,
    output_dir: Path,
    model_id: str,
    settings: TrainingSettings,
    inference: SegmentationSettings,
    architecture: NetworkSpec = DEFAULT_ARCHITECTURE,
    preprocessing: PreprocessParameters = DEFAULT_PREPROCESSING,
    steps: int | None = None,
    init_from: Path | None = None,
    resume: bool = False,
) -> TrainOutcome:
    """Build the synthetic training/validation data from ``data_root`` and train.

    From scratch by default; with ``init_from`` (a model JSON) training continues from that
    model's weights, with its architecture and preprocessing (the later stages of the
    shipped recipe, see MODEL_CARD.md); the JSON records every stage it descends from.
    ``inference`` holds the post-processing settings scans are segmented with; the lesion
    threshold is calibrated under them.

    The training state is checkpointed every ``settings.checkpoint_every`` steps into
    ``output_dir`` (:func:`~segmentation.training.checkpoint.checkpoint_path`); ``resume``
    continues an interrupted run from there (a checkpoint left by an unfinished run is refused
    without it, before any data is rendered). The checkpoint is deleted once the calibrated
    model is written.
    """
    from segmentation.training.cache import build_medseg_cache, build_negative_cache, build_training_cache
    from segmentation.training.validation import build_validation_set
    from segmentation.weights import write_model

    checkpointing = Checkpointing(checkpoint_path(output_dir, model_id), settings.checkpoint_every, resume)
    refuse_unfinished(checkpointing)
    begin = starting_point(init_from, architecture=architecture, preprocessing=preprocessing)
    architecture, preprocessing = begin.architecture, begin.preprocessing
    cache_dir = Path(settings.cache_dir).expanduser()
    start = time.monotonic()
    holdout = settings.holdout_background
    folder = build_training_cache(
        data_root=data_root,
        cache_dir=cache_dir,
        params=preprocessing,
        n_cases=settings.n_cases,
        seed=settings.seed,
        holdout=holdout,
        targets=settings.targets,
        extra=settings.extra_backgrounds,
    )
    cases = open_cache(folder, kind_weights=settings.kind_weights)
    negatives = None
    if settings.negative_cases:
        negatives = build_negative_cache(
            data_root=data_root,
            cache_dir=cache_dir,
            params=preprocessing,
            n_cases=settings.negative_cases,
            seed=settings.seed,
        )
        cases += open_cache(negatives, kind_weights=settings.kind_weights)
    medseg = None
    if settings.medseg_share > 0:
        medseg = build_medseg_cache(data_root=data_root, cache_dir=cache_dir, params=preprocessing)
        cases = with_share(cases, open_cache(medseg), settings.medseg_share)
    data_seconds = time.monotonic() - start
    validation_folder = build_validation_set(
        data_root=data_root, cache_dir=cache_dir, background=holdout, targets=settings.targets
    )
    monitor = monitoring_samples(validation_folder, preprocessing)
    config = train_config(settings, steps=steps)
    result = train_network(
        cases=cases,
        spec=architecture,
        params=preprocessing,
        config=config,
        init_state=begin.state_dict,
        validation=monitor,
        cleanup=Cleanup(inference.min_component_fraction, inference.min_lesion_voxels),
        checkpointing=checkpointing,
    )
    metadata = {
        "description": "Right/left lung and COVID-19 GGO/consolidation segmentation of chest CT (research use only)",
        "training": {
            "from": begin.origin,
            "cache": folder.name,
            "n_cases": settings.n_cases,
            "kind_weights": dict(sorted(settings.kind_weights.items())),
            **({"negative_cases": settings.negative_cases, "negative_cache": negatives.name} if negatives else {}),
            **({"medseg_share": settings.medseg_share, "medseg_cache": medseg.name} if medseg else {}),
            "seed": settings.seed,
            "holdout_background": holdout,
            **({"extra_backgrounds": list(settings.extra_backgrounds)} if settings.extra_backgrounds else {}),
            "targets": settings.targets.value,
            "config": config_dict(config),
            "data_seconds": round(data_seconds, 1),
            "train_seconds": round(result.seconds, 1),
            "torch_threads": config.threads,
            "machine": platform.processor() or platform.machine(),
            "final_validation": result.history[-1].get("validation", {}) if result.history else {},
            "final_validation_scoring": "working grid, after the inference clean-up, thresholds 0.5",
        },
        "labels": {"lungs": {"1": "right_lung", "2": "left_lung"}, "lesions": {"1": "ggo", "2": "consolidation"}},
    }
    save = functools.partial(
        write_model,
        directory=output_dir,
        model_id=model_id,
        state_dict=result.state_dict,
        architecture=architecture,
        preprocessing=preprocessing,
        metadata=metadata,
    )
    json_path = save()
    # Lesion threshold: calibrated on development cases rendered on the *training* chest
    # (new lesions and acquisitions), never on the held-out one (segmentation/training/calibrate.py).
    development = next(name for name in CHESTS if name != holdout)
    calibration = calibrate_saved_model(
        json_path,
        data_root=data_root,
        cache_dir=cache_dir,
        background=development,
        inference=inference,
        targets=settings.targets,
    )
    metadata["training"]["calibration"] = {"background": development, **calibration.to_dict()}
    metadata["training"]["total_seconds"] = round(time.monotonic() - start, 1)
    json_path = save(thresholds=calibration.thresholds)  # the same files, now with the thresholds
    remove_checkpoint(checkpointing)
    return TrainOutcome(json_path, time.monotonic() - start, result.history)


def calibrate_saved_model(
    json_path: Path,
    *,
    data_root: Path,
    cache_dir: Path,
    background: str,
    inference: SegmentationSettings,
    targets: Targets,
):
    """Calibrate the lesion threshold of the model at ``json_path`` on the development cases of ``background``."""
    from segmentation.inference import load_model
    from segmentation.training.calibrate import calibrate_lesion_threshold
    from segmentation.training.validation import build_validation_set

    folder = build_validation_set(data_root=data_root, cache_dir=cache_dir, background=background, targets=targets)
    model = load_model(json_path, device="cpu")
    return calibrate_lesion_threshold(
        model,
        folder,
        batch_slices=inference.batch_slices,
        min_component_fraction=inference.min_component_fraction,
        min_lesion_voxels=inference.min_lesion_voxels,
    )
