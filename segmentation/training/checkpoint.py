"""Resumable training: the whole optimisation state, written atomically every few hundred steps.

A run of ``lunglesion train`` takes from minutes (fine-tuning) to hours (the first stage of the
shipped recipe on 2 CPU cores). A checkpoint holds everything the next step depends on: the
network weights (batch-norm statistics included), the optimiser's moments, the state of the
torch generator that draws every slice and augmentation, the global torch generator, the
history and the running loss means of the log. A run continued from it (``lunglesion train
--continue``, nnU-Net's ``--c``) therefore ends with exactly the weights the uninterrupted run
would have written (tested in ``tests/segmentation/test_training.py``).

A checkpoint is only ever continued by the run that wrote it: it carries a fingerprint of the
configuration, the network and preprocessing, the training cases and the starting weights, and
a different run refuses it (``CHECKPOINT_INVALID``) instead of mixing two trainings.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ErrorCode, LunglesionError
from pipeline.io.atomic import atomic_path

if TYPE_CHECKING:
    from segmentation.network import NetworkSpec
    from segmentation.preprocess import PreprocessParameters
    from segmentation.training.train import CachedCase, TrainConfig

log = logging.getLogger(__name__)

#: Version of the checkpoint layout; a checkpoint of another version is refused.
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often a training run saves its state, and whether it continues from it."""

    path: Path
    """The checkpoint file (``<out>/<model-id>.checkpoint.pt`` for ``lunglesion train``)."""
    every: int
    """Steps between checkpoints (one more is written after the last step)."""
    resume: bool = False
    """Continue from ``path`` when it exists (``--continue``); otherwise start at step 0."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"checkpoint interval must be at least 1 step, got {self.every}")


def checkpoint_path(output_dir: Path, model_id: str) -> Path:
    """The checkpoint file of model ``model_id`` in ``output_dir``."""
    return Path(output_dir) / f"{model_id}.checkpoint.pt"


def refuse_unfinished(checkpointing: Checkpointing) -> None:
    """Refuse to start a run over an unfinished one unless asked to continue it.

    Called before any training data is rendered, so that the refusal comes at once.

    Raises
    ------
    LunglesionError
        ``CONFIG_INVALID`` when ``checkpointing.path`` exists and ``resume`` is off.
    """
    if checkpointing.path.exists() and not checkpointing.resume:
        raise LunglesionError(
            ErrorCode.CONFIG_INVALID,
            f"{checkpointing.path} holds an unfinished training run: pass --continue to resume it, "
            "or delete the file to start again",
        )


def _tensor_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_fingerprint(
    *,
    config: TrainConfig,
    spec: NetworkSpec,
    params: PreprocessParameters,
    cases: Sequence[CachedCase],
    init_state: dict | None,
) -> str:
    """SHA-256 of what decides a training run's result.

    The configuration (steps and seed included), the architecture and preprocessing, each
    training case's name, sampling weight, shape and number of lung and lesion slices, and the
    starting weights (their bytes; ``scratch`` for random initialisation).
    """
    from segmentation.training.train import config_dict

    described = {
        "format": CHECKPOINT_FORMAT,
        "config": config_dict(config),
        "network": spec.to_dict(),
        "preprocessing": params.to_dict(),
        "cases": [
            [c.name, round(float(c.weight), 12), list(c.image.shape), c.lung_slices.size, c.lesion_slices.size]
            for c in cases
        ],
        "start": "scratch" if init_state is None else _tensor_digest(init_state),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class TrainingState:
    """Everything a training step depends on, after ``step`` completed steps."""

    step: int
    fingerprint: str
    network: dict
    optimiser: dict
    generator: object
    """``torch.Generator.get_state()`` of the sampling and augmentation generator."""
    global_rng: object
    """``torch.get_rng_state()``."""
    history: list[dict]
    running: list[tuple[float, ...]]
    seconds: float
    """Optimisation time spent before this checkpoint (all earlier attempts together)."""


def save_checkpoint(path: Path, state: TrainingState) -> None:
    """Write ``state`` to ``path`` atomically (a crash while writing leaves the previous checkpoint)."""
    import torch

    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": state.step,
        "fingerprint": state.fingerprint,
        "network": state.network,
        "optimiser": state.optimiser,
        "generator": state.generator,
        "global_rng": state.global_rng,
        "history": state.history,
        "running": [list(r) for r in state.running],
        "seconds": state.seconds,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, *, fingerprint: str) -> TrainingState:
    """Read the checkpoint at ``path`` written by the run whose fingerprint is ``fingerprint``.

    Raises
    ------
    LunglesionError
        ``CHECKPOINT_INVALID``: the file cannot be read, has another layout version, or was
        written by a different run (configuration, data or starting weights).
    """
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear refusal
        raise LunglesionError(
            ErrorCode.CHECKPOINT_INVALID, f"the training checkpoint {path} cannot be read ({error}); delete it"
        ) from error
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != CHECKPOINT_FORMAT:
        raise LunglesionError(
            ErrorCode.CHECKPOINT_INVALID,
            f"the training checkpoint {path} has layout {found!r}, not {CHECKPOINT_FORMAT}; delete it",
        )
    if payload["fingerprint"] != fingerprint:
        raise LunglesionError(
            ErrorCode.CHECKPOINT_INVALID,
            f"the training checkpoint {path} was written by a different training run (configuration, "
            "training cases or starting weights differ); delete it or choose another --out",
        )
    return TrainingState(
        step=int(payload["step"]),
        fingerprint=payload["fingerprint"],
        network=payload["network"],
        optimiser=payload["optimiser"],
        generator=payload["generator"],
        global_rng=payload["global_rng"],
        history=list(payload["history"]),
        running=[tuple(r) for r in payload["running"]],
        seconds=float(payload["seconds"]),
    )


def remove_checkpoint(checkpointing: Checkpointing | None) -> None:
    """Delete the checkpoint once the finished model is written (nothing to continue)."""
    if checkpointing is not None:
        checkpointing.path.unlink(missing_ok=True)
