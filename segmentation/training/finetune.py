"""Fine-tuning on a research group's own labelled CT (NIfTI image/label pairs + a label map)."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.errors import ErrorCode, LunglesionError
from pipeline.io.atomic import atomic_path, write_text_atomic
from segmentation.grid import canonical_array
from segmentation.labelmap import LabelMap, find_cases, read_reference
from segmentation.settings import TrainingSettings
from segmentation.synth.lesions import IGNORE_LABEL
from segmentation.training.cases import SimulatedSeries, working_sample
from segmentation.training.train import config_dict, open_cache, train_network
from segmentation.weights import read_description

log = logging.getLogger(__name__)


def build_user_cache(labels_dir: Path, label_map: LabelMap | None, *, cache_dir: Path, params) -> Path:
    """Convert the user's cases to working-grid training samples (cached by content)."""
    cases = find_cases(labels_dir)
    if not cases:
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"no image/label pairs found in {labels_dir}")
    digest = hashlib.sha256()
    for case in cases:
        for path in (case.image, case.lungs, case.lesions, case.label, case.ignore):
            if path is not None:
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(json.dumps({k.value: v for k, v in (label_map.values if label_map else {}).items()}).encode())
    digest.update(json.dumps(params.to_dict(), sort_keys=True).encode())
    folder = Path(cache_dir) / f"user-{digest.hexdigest()[:12]}"
    if (folder / "index.json").exists():
        return folder
    records = []
    for index, case in enumerate(cases):
        image = sitk.ReadImage(str(case.image))
        lungs, lesions, ignore = read_reference(case, label_map, grid=image)
        if lungs is None:
            raise LunglesionError(
                ErrorCode.CONFIG_INVALID,
                f"{case.name}: fine-tuning needs lung labels (right_lung/left_lung or lung in the label map)",
            )
        hu, canon = canonical_array(image, dtype=np.float32)
        np.clip(hu, -1024.0, 3071.0, out=hu)
        c_lungs = np.ascontiguousarray(canon.forward(lungs))
        c_ignore = np.ascontiguousarray(canon.forward(ignore))
        if lesions is None:  # no lesion reference: the lesion head learns nothing from this case
            c_lesions = np.zeros(hu.shape, np.uint8)
            c_ignore = np.ones(hu.shape, bool)
        else:
            c_lesions = np.ascontiguousarray(canon.forward(lesions))
            c_lesions[c_lungs == 0] = 0
        series = SimulatedSeries(
            hu=hu,
            spacing_zyx=canon.spacing_zyx,
            z_positions=np.arange(hu.shape[0], dtype=float),
            thickness_mm=canon.spacing_zyx[0],
            native_lungs=c_lungs,
            native_lesions=c_lesions,
            native_ignore=c_ignore,
            native_spacing_zyx=canon.spacing_zyx,
        )
        working, w_lungs, w_lesions, _ = working_sample(series, params)
        case_dir = folder / f"case-{index:04d}"
        case_dir.mkdir(parents=True, exist_ok=True)
        for name, array in (
            ("image.npy", working.astype(np.float16)),
            ("lungs.npy", w_lungs),
            ("lesions.npy", w_lesions),
        ):
            with atomic_path(case_dir / name) as tmp:
                np.save(tmp, array, allow_pickle=False)
        records.append(
            {
                "folder": case_dir.name,
                "background": f"user:{case.name}",
                "kind": "user",
                "acquisition": "as acquired",
                "lesion_fraction": float((w_lesions[(w_lesions != IGNORE_LABEL)] > 0).mean()),
                "shape": list(working.shape),
            }
        )
        log.info("user case %s: %s working voxels", case.name, "x".join(map(str, working.shape)))
    write_text_atomic(folder / "index.json", json.dumps({"params": params.to_dict(), "cases": records}, indent=1))
    return folder


def finetune(
    *,
    labels_dir: Path,
    label_map: LabelMap | None,
    base_weights: Path | None,
    output_dir: Path,
    model_id: str,
    settings: TrainingSettings,
    data_root: Path | None,
    steps: int | None = None,
    resume: bool = False,
) -> Path:
    """Fine-tune ``base_weights`` (the shipped model when None) on the user's cases; return the model JSON.

    Checkpointed like :func:`~segmentation.training.run.train_default_model` (``resume``
    continues an interrupted fine-tuning; the checkpoint is deleted once the model is written).
    """
    from segmentation.training.checkpoint import (
        Checkpointing,
        checkpoint_path,
        refuse_unfinished,
        remove_checkpoint,
    )
    from segmentation.training.run import train_config
    from segmentation.weights import load_state_dict, write_model

    checkpointing = Checkpointing(checkpoint_path(output_dir, model_id), settings.checkpoint_every, resume)
    refuse_unfinished(checkpointing)
    base = read_description(base_weights)
    state = load_state_dict(base)
    cache_dir = Path(settings.cache_dir).expanduser()
    user_folder = build_user_cache(labels_dir, label_map, cache_dir=cache_dir, params=base.preprocessing)
    cases = open_cache(user_folder)
    synthetic = []
    if data_root is not None and settings.finetune_synthetic_fraction > 0:
        from segmentation.training.cache import build_training_cache

        folder = build_training_cache(
            data_root=data_root,
            cache_dir=cache_dir,
            params=base.preprocessing,
            n_cases=settings.n_cases,
            seed=settings.seed,
            holdout=settings.holdout_background,
            targets=settings.targets,
            extra=settings.extra_backgrounds,
        )
        synthetic = open_cache(folder)
        share = settings.finetune_synthetic_fraction
        for case in synthetic:
            case.weight = share / len(synthetic)
        for case in cases:
            case.weight = (1 - share) / len(cases)
    config = train_config(
        settings, steps=steps or settings.finetune_steps, learning_rate=settings.finetune_learning_rate
    )
    start = time.monotonic()
    result = train_network(
        cases=cases + synthetic,
        spec=base.architecture,
        params=base.preprocessing,
        config=config,
        init_state=state,
        checkpointing=checkpointing,
    )
    metadata = {
        "description": f"{base.model_id} fine-tuned on {len(cases)} user case(s) (research use only)",
        "training": {
            "from": {"model_id": base.model_id, "sha256": base.sha256},
            "user_cases": len(cases),
            "user_cache": user_folder.name,
            "synthetic_cases": len(synthetic),
            "config": config_dict(config),
            "train_seconds": round(time.monotonic() - start, 1),
            "machine": platform.processor() or platform.machine(),
        },
        "labels": base.metadata.get("labels", {}),
    }
    json_path = write_model(
        directory=output_dir,
        model_id=model_id,
        state_dict=result.state_dict,
        architecture=base.architecture,
        preprocessing=base.preprocessing,
        metadata=metadata,
        # The base model's calibrated thresholds (recalibrate on your own development cases if needed).
        thresholds=base.thresholds,
    )
    remove_checkpoint(checkpointing)
    return json_path
