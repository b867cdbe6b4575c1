"""The training loop (CPU is enough): 2.5-D slices from cached cases, two heads, Dice + cross-entropy.

Deterministic for a given cache, configuration and seed on one machine: one torch generator
drives sampling and augmentation, ``torch.use_deterministic_algorithms`` is on, and the
process uses a fixed number of threads.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segmentation.network import LESION_CHANNELS, LUNG_CHANNELS, NetworkSpec, build_network
from segmentation.postprocess import Cleanup, WorkingFields, clean_up, edge_air, working_lesion_labels
from segmentation.preprocess import PreprocessParameters, context_stack
from segmentation.result import LesionLabel
from segmentation.settings import Augmentation
from segmentation.synth.lesions import ANY_LUNG_LABEL, IGNORE_LABEL
from segmentation.training.checkpoint import (
    Checkpointing,
    TrainingState,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the ``segmentation.training`` config section)."""

    steps: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    crop: tuple[int, int]
    lesion_weight: float
    augment_strength: float
    lung_slice_fraction: float
    seed: int
    threads: int
    validate_every: int
    augmentation: Augmentation = Augmentation.TORCH
    """Which implementation draws the batch augmentation."""
    consolidated_lung_weight: float = 1.0
    """Weight of consolidated voxels in the lung head's cross-entropy (1: every voxel alike)."""
    lesion_slice_fraction: float = 0.0
    """Share of training slices drawn among the slices of a case that hold a lesion (0: none)."""
    mirror_probability: float = 0.0
    """Probability that a training sample is mirrored left/right, lung sides swapped (0: never)."""


@dataclass
class CachedCase:
    """A cached case opened with memory-mapping."""

    name: str
    image: np.ndarray
    lungs: np.ndarray
    lesions: np.ndarray
    weight: float = 1.0
    lung_slices: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    lesion_slices: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    """Slices holding a GGO or consolidation voxel (the ignore label does not count)."""


@dataclass
class TrainResult:
    state_dict: dict
    history: list[dict]
    seconds: float
    steps: int


def open_cache(
    folder: Path, *, weight: float = 1.0, kind_weights: Mapping[str, float] | None = None
) -> list[CachedCase]:
    """All cases of a cache folder (``index.json`` + ``case-*/``).

    A case's sampling weight is ``weight`` x its record's ``weight`` x ``kind_weights`` of its
    family (``kind`` in the index; 1 for families not named).
    """
    kind_weights = kind_weights or {}
    index = json.loads((Path(folder) / "index.json").read_text())
    cases = []
    for record in index["cases"]:
        case_dir = Path(folder) / record["folder"]
        lungs = np.load(case_dir / "lungs.npy", mmap_mode="r")
        lung_slices = np.flatnonzero(np.asarray(lungs).reshape(lungs.shape[0], -1).max(axis=1) > 0)
        lesions = np.load(case_dir / "lesions.npy", mmap_mode="r")
        flat = np.asarray(lesions).reshape(lesions.shape[0], -1)
        lesion_slices = np.flatnonzero(np.isin(flat, (LesionLabel.GGO, LesionLabel.CONSOLIDATION)).any(axis=1))
        cases.append(
            CachedCase(
                name=f"{record['background']}/{record['folder']}",
                image=np.load(case_dir / "image.npy", mmap_mode="r"),
                lungs=lungs,
                lesions=lesions,
                weight=weight * float(record.get("weight", 1.0)) * float(kind_weights.get(record.get("kind"), 1.0)),
                lung_slices=lung_slices,
                lesion_slices=lesion_slices,
            )
        )
    return cases


class SliceSampler:
    """Draws (input stack, lung target, lesion target) crops from cached cases."""

    def __init__(self, cases: list[CachedCase], params: PreprocessParameters, config: TrainConfig, gen) -> None:
        self.cases = cases
        self.offsets = params.context_offsets
        self.config = config
        self.gen = gen
        weights = np.array([c.weight for c in cases], float)
        self.case_p = weights / weights.sum()

    def _uniform(self) -> float:
        import torch

        return float(torch.rand(1, generator=self.gen))

    def _randint(self, n: int) -> int:
        import torch

        return int(torch.randint(n, (1,), generator=self.gen))

    def draw(self, n: int):
        import torch

        h, w = self.config.crop
        c = len(self.offsets)
        image = np.full((n, c, h, w), -1.0, np.float32)
        lungs = np.zeros((n, h, w), np.int64)
        lesions = np.zeros((n, h, w), np.int64)
        cumulative = np.cumsum(self.case_p)
        for i in range(n):
            case = self.cases[int(min(np.searchsorted(cumulative, self._uniform()), len(self.cases) - 1))]
            depth, ch, cw = case.image.shape
            # A lesion slice is drawn only when asked for (no random number is used otherwise, so
            # runs without it draw exactly the slices they drew before the option existed).
            fraction = self.config.lesion_slice_fraction
            if fraction > 0 and case.lesion_slices.size and self._uniform() < fraction:
                z = int(case.lesion_slices[self._randint(case.lesion_slices.size)])
            elif case.lung_slices.size and self._uniform() < self.config.lung_slice_fraction:
                z = int(case.lung_slices[self._randint(case.lung_slices.size)])
            else:
                z = self._randint(depth)
            stack = context_stack(case.image, np.array([z]), self.offsets)[0].astype(np.float32)
            # Random crop (or centred placement with random jitter when the slice is smaller).
            y0 = self._randint(ch - h + 1) if ch > h else 0
            x0 = self._randint(cw - w + 1) if cw > w else 0
            ty = self._randint(h - ch + 1) if ch < h else 0
            tx = self._randint(w - cw + 1) if cw < w else 0
            sh, sw = min(h, ch), min(w, cw)
            image[i, :, ty : ty + sh, tx : tx + sw] = stack[:, y0 : y0 + sh, x0 : x0 + sw]
            lungs[i, ty : ty + sh, tx : tx + sw] = case.lungs[z, y0 : y0 + sh, x0 : x0 + sw]
            lesions[i, ty : ty + sh, tx : tx + sw] = case.lesions[z, y0 : y0 + sh, x0 : x0 + sw]
        return torch.from_numpy(image), torch.from_numpy(lungs), torch.from_numpy(lesions)


def _dice_loss(probabilities, target, classes: tuple[int, ...], valid=None):
    import torch

    losses = []
    for k in classes:
        p = probabilities[:, k]
        g = (target == k).float()
        if valid is not None:
            p = p * valid
            g = g * valid
        inter = (p * g).sum()
        losses.append(1.0 - (2.0 * inter + 1.0) / (p.sum() + g.sum() + 1.0))
    return torch.stack(losses).mean()


def segmentation_loss(logits, lungs, lesions, *, lesion_weight: float, consolidated_lung_weight: float = 1.0):
    """Cross-entropy + batch Dice for both heads; voxels labelled 255 (``IGNORE_LABEL``) are ignored.

    Ignored lesion voxels are real nodules and unseen GGO; ignored lung voxels are slices that
    come without lung labels (the MedSeg training slices). Lung voxels labelled
    ``ANY_LUNG_LABEL`` (254; those slices' lesions) add -log(P(right) + P(left)) to the lung
    head's cross-entropy and are left out of its Dice term.

    ``consolidated_lung_weight`` weighs the voxels labelled consolidation in the lung head's
    cross-entropy (a weighted mean): consolidated lung against the chest wall, the heart or the
    diaphragm is where the lung head is least sure, and where a lung cut short takes lesion with it.
    """
    import torch
    import torch.nn.functional as F

    lung_logits = logits[:, LUNG_CHANNELS]
    lesion_logits = logits[:, LESION_CHANNELS]
    any_lung = lungs == ANY_LUNG_LABEL
    partial = any_lung | (lungs == IGNORE_LABEL)
    if partial.any():  # slices without lung masks (MedSeg): taught only that their lesions are lung
        lung_valid = (~partial).float()
        lungs = torch.where(partial, torch.zeros_like(lungs), lungs)
    else:  # (the arithmetic of batches without such voxels is exactly as before)
        lung_valid = None
    if consolidated_lung_weight == 1.0 and lung_valid is None:
        lung_ce = F.cross_entropy(lung_logits, lungs)
    else:
        weight = 1.0 + (consolidated_lung_weight - 1.0) * (lesions == LesionLabel.CONSOLIDATION).float()
        per_voxel = F.cross_entropy(lung_logits, lungs, reduction="none")
        if lung_valid is not None:
            # Lung of either side: -log(P(right) + P(left)), from the logits for stability.
            log_p = torch.log_softmax(lung_logits, 1)
            either = -torch.logsumexp(log_p[:, 1:3], dim=1)
            per_voxel = torch.where(any_lung, either, per_voxel)
            weight = weight * (lung_valid + any_lung.float())
        lung_ce = (per_voxel * weight).sum() / weight.sum().clamp_min(1.0)
    lung_loss = lung_ce + _dice_loss(torch.softmax(lung_logits, 1), lungs, (1, 2), lung_valid)
    valid = (lesions != IGNORE_LABEL).float()
    target = torch.where(lesions == IGNORE_LABEL, torch.zeros_like(lesions), lesions)
    ce = F.cross_entropy(lesion_logits, lesions, ignore_index=IGNORE_LABEL) if valid.any() else lesion_logits.sum() * 0
    lesion_loss = ce + _dice_loss(torch.softmax(lesion_logits, 1), target, (1, 2), valid[:, None].squeeze(1))
    return lung_loss + lesion_weight * lesion_loss, float(lung_loss.detach()), float(lesion_loss.detach())


def predict_working(net, image: np.ndarray, offsets: tuple[int, ...], *, batch: int = 16) -> np.ndarray:
    """Softmax of both heads for every working slice: (Z, 6, H, W) float32 (eval mode, no grad)."""
    import torch

    out = np.zeros((image.shape[0], 6) + image.shape[1:], np.float32)
    with torch.inference_mode():
        for z0 in range(0, image.shape[0], batch):
            centres = np.arange(z0, min(image.shape[0], z0 + batch))
            x = torch.from_numpy(context_stack(image, centres, offsets).astype(np.float32))
            logits = net(x)
            out[centres, 0:3] = torch.softmax(logits[:, LUNG_CHANNELS], 1).numpy()
            out[centres, 3:6] = torch.softmax(logits[:, LESION_CHANNELS], 1).numpy()
    return out


def monitor_labels(
    prob: np.ndarray, image: np.ndarray, params: PreprocessParameters, cleanup: Cleanup
) -> tuple[np.ndarray, np.ndarray]:
    """Working-grid lung and lesion labels of ``prob`` after the clean-up every scan gets.

    ``prob`` is :func:`predict_working`'s output for the network input ``image``; thresholds
    are 0.5 (training does not know the calibrated lesion threshold yet). The clean-up
    (outside air, lung components, holes, lesions inside the lungs) is what makes these labels
    comparable with what ``segment()`` returns: the raw argmax also calls air outside the
    body and tissue in the first and last slices lung.
    """
    fields = WorkingFields.from_probabilities(prob[:, 0:3], prob[:, 3:6])
    outside = edge_air(image, params)
    lungs = clean_up(fields, outside, cleanup)
    return lungs, working_lesion_labels(fields, lungs)


def working_dice(
    lung_pred: np.ndarray, lesion_pred: np.ndarray, lungs: np.ndarray, lesions: np.ndarray
) -> dict[str, float]:
    """Dice on the working grid (a quick validation signal while training)."""

    def dice(a, b):
        s = a.sum() + b.sum()
        return float(2 * (a & b).sum() / s) if s else 1.0

    valid = lesions != IGNORE_LABEL
    return {
        "right": dice(lung_pred == 1, lungs == 1),
        "left": dice(lung_pred == 2, lungs == 2),
        "lesion": dice((lesion_pred > 0) & valid, (lesions > 0) & valid),
        "fraction_pred": float((lesion_pred > 0).sum() / max(1, (lung_pred > 0).sum())),
        "fraction_true": float((lesions > 0).sum() / max(1, (lungs > 0).sum())),
    }


def train_network(
    *,
    cases: list[CachedCase],
    spec: NetworkSpec,
    params: PreprocessParameters,
    config: TrainConfig,
    init_state: dict | None = None,
    validation: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] | None = None,
    cleanup: Cleanup | None = None,
    checkpointing: Checkpointing | None = None,
) -> TrainResult:
    """Train (or fine-tune from ``init_state``) and return the final weights and a history.

    ``validation`` holds working-grid monitor cases ``(name, image, lungs, lesions)`` scored
    every ``config.validate_every`` steps after the clean-up ``cleanup`` (required with them);
    the scores go to the log and the history, never into a decision.

    With ``checkpointing`` the whole training state is saved every ``checkpointing.every``
    steps and after the last one (:mod:`segmentation.training.checkpoint`); with its ``resume``
    on, a run continues from an existing checkpoint of the same run and returns exactly the
    weights of an uninterrupted one (``seconds`` then counts every attempt's optimisation).

    Raises
    ------
    LunglesionError
        ``CHECKPOINT_INVALID`` when the checkpoint to continue from belongs to another run.
    """
    import torch

    if validation and cleanup is None:
        raise ValueError("monitor cases need the clean-up settings (cleanup=Cleanup(...))")

    torch.set_num_threads(config.threads)
    # Denormal floats in late training make CPU kernels several times slower; flush them to zero.
    torch.set_flush_denormal(True)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(config.seed)
    net = build_network(spec)
    if init_state is not None:
        net.load_state_dict(init_state)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.learning_rate * (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    augment = _augmenter(config)
    sampler = SliceSampler(cases, params, config, gen)
    history: list[dict] = []
    running: list[tuple[float, ...]] = []
    first_step, seconds_before = 0, 0.0
    fingerprint = ""
    if checkpointing is not None:
        fingerprint = run_fingerprint(config=config, spec=spec, params=params, cases=cases, init_state=init_state)
        saved = _saved_state(checkpointing, fingerprint)
        if saved is not None:
            net.load_state_dict(saved.network)
            optimiser.load_state_dict(saved.optimiser)
            gen.set_state(saved.generator)
            torch.set_rng_state(saved.global_rng)
            history, running = saved.history, saved.running
            first_step, seconds_before = saved.step, saved.seconds
            log.info("continuing from %s at step %d/%d", checkpointing.path, first_step, config.steps)
    start = time.monotonic() - seconds_before
    for step in range(first_step, config.steps):
        net.train()
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        t0 = time.perf_counter()
        image, lungs, lesions = sampler.draw(config.batch_size)
        image, lungs, lesions = augment(image, lungs, lesions, gen)
        t1 = time.perf_counter()
        logits = net(image)
        loss, lung_loss, lesion_loss = segmentation_loss(
            logits,
            lungs,
            lesions,
            lesion_weight=config.lesion_weight,
            consolidated_lung_weight=config.consolidated_lung_weight,
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running.append((float(loss.detach()), lung_loss, lesion_loss, t1 - t0, time.perf_counter() - t1))
        last = step + 1 == config.steps
        if (step + 1) % 50 == 0 or last:
            mean = np.mean(running, axis=0)
            running = []
            log.info(
                "step %d/%d loss %.4f (lung %.4f, lesion %.4f) lr %.2e %.0f s (data %.2f s, net %.2f s per step)",
                step + 1,
                config.steps,
                mean[0],
                mean[1],
                mean[2],
                lr_at(step),
                time.monotonic() - start,
                mean[3],
                mean[4],
            )
            entry = {"step": step + 1, "loss": float(mean[0]), "lung": float(mean[1]), "lesion": float(mean[2])}
            if validation and ((step + 1) % config.validate_every == 0 or last):
                net.eval()
                scores = {}
                for name, v_image, v_lungs, v_lesions in validation:
                    prob = predict_working(net, v_image, params.context_offsets)
                    lung_pred, lesion_pred = monitor_labels(prob, v_image, params, cleanup)
                    scores[name] = working_dice(lung_pred, lesion_pred, v_lungs, v_lesions)
                entry["validation"] = scores
                summary = {k: float(np.mean([s[k] for s in scores.values()])) for k in ("right", "left", "lesion")}
                rounded = {k: round(v, 4) for k, v in summary.items()}
                log.info("validation (working grid, after clean-up) %s", json.dumps(rounded))
            history.append(entry)
        if checkpointing is not None and ((step + 1) % checkpointing.every == 0 or last):
            state = TrainingState(
                step=step + 1,
                fingerprint=fingerprint,
                network=net.state_dict(),
                optimiser=optimiser.state_dict(),
                generator=gen.get_state(),
                global_rng=torch.get_rng_state(),
                history=history,
                running=running,
                seconds=time.monotonic() - start,
            )
            save_checkpoint(checkpointing.path, state)
            log.info("checkpoint at step %d written: %s", step + 1, checkpointing.path)
    net.eval()
    return TrainResult(
        state_dict={k: v.detach().clone() for k, v in net.state_dict().items()},
        history=history,
        seconds=time.monotonic() - start,
        steps=config.steps,
    )


def _saved_state(checkpointing: Checkpointing, fingerprint: str) -> TrainingState | None:
    """The checkpoint to continue from, or None (no ``resume``, or nothing saved yet)."""
    if not checkpointing.resume:
        return None
    if not checkpointing.path.exists():
        log.info("no checkpoint at %s: starting at step 0", checkpointing.path)
        return None
    return load_checkpoint(checkpointing.path, fingerprint=fingerprint)


def _augmenter(config: TrainConfig):
    """The batch augmentation ``(image, lungs, lesions, gen) -> (image, lungs, lesions)`` of ``config``."""
    if Augmentation(config.augmentation) is Augmentation.MONAI:
        from segmentation.training.augment_monai import MonaiAugmenter

        return MonaiAugmenter(crop=config.crop, strength=config.augment_strength)
    from segmentation.training.augment import augment_batch

    def augment(image, lungs, lesions, gen):
        return augment_batch(
            image, lungs, lesions, gen, strength=config.augment_strength, mirror=config.mirror_probability
        )

    return augment


def config_dict(config: TrainConfig) -> dict:
    data = asdict(config)
    data["crop"] = list(config.crop)
    return data
