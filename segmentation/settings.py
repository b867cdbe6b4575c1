"""Settings of the segmentation stage (owned by the segmentation package).

Defaults live in ``configs/default.yaml`` (section ``segmentation``); these classes only
declare and validate. The network's own hyper-parameters and preprocessing are *not* here:
they travel with the weights in the model JSON.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator

from pipeline.settings_base import SettingsModel
from segmentation.synth.targets import Targets


class SegmentationMethod(StrEnum):
    """Which segmenter produces the lung and lesion masks."""

    MODEL = "model"
    CLASSICAL = "classical"


class DeviceChoice(StrEnum):
    """Where the network runs."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class ClassicalSettings(SettingsModel):
    """The HU-threshold baseline segmenter (``method: classical``)."""

    body_threshold_hu: float = Field(ge=-1000, le=0)
    lung_threshold_hu: float = Field(ge=-900, le=0)
    airway_max_threshold_hu: float = Field(ge=-1000, le=-500)
    airway_max_volume_ml: float = Field(gt=0)
    min_lung_volume_ml: float = Field(ge=0)
    ggo_min_hu: float = Field(ge=-1000, le=0)
    consolidation_min_hu: float = Field(ge=-1000, le=200)
    lesion_opening_mm: float = Field(ge=0)
    min_lesion_volume_ml: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ClassicalSettings:
        if not self.ggo_min_hu < self.consolidation_min_hu:
            raise ValueError("ggo_min_hu must be below consolidation_min_hu")
        return self


class Augmentation(StrEnum):
    """Which implementation draws the training augmentation (same transform families, different engines)."""

    TORCH = "torch"
    """Batched torch operations (:mod:`segmentation.training.augment`)."""
    MONAI = "monai"
    """MONAI's randomised transforms (:mod:`segmentation.training.augment_monai`)."""


class TrainingSettings(SettingsModel):
    """``lunglesion train``: training-set generation and optimisation."""

    cache_dir: Path
    holdout_background: str
    targets: Targets = Targets.VISIBLE
    """What the synthetic references leave out of the lesion loss and of scoring (``segmentation.synth.targets``)."""
    n_cases: int = Field(ge=1)
    seed: int = Field(ge=0)
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_steps: int = Field(ge=0)
    crop: tuple[int, int]
    lesion_weight: float = Field(ge=0)
    consolidated_lung_weight: float = Field(default=1.0, gt=0)
    """Weight of consolidated voxels in the lung head's cross-entropy (1: every voxel alike)."""
    augment_strength: float = Field(ge=0, le=2)
    augmentation: Augmentation
    lung_slice_fraction: float = Field(ge=0, le=1)
    lesion_slice_fraction: float = Field(default=0.0, ge=0, le=1)
    """Share of training slices drawn among a case's slices that hold a lesion (before the lung rule)."""
    threads: int = Field(ge=1)
    validate_every: int = Field(ge=1)
    checkpoint_every: int = Field(default=500, ge=1)
    """Steps between saves of the whole training state (``lunglesion train --continue`` resumes there)."""
    finetune_steps: int = Field(ge=1)
    finetune_learning_rate: float = Field(gt=0)
    finetune_synthetic_fraction: float = Field(ge=0, le=1)
    kind_weights: dict[str, float] = Field(default_factory=dict)
    """Sampling weight per case family (``PlanKind`` value, or ``no-lung``); families not named weigh 1."""
    negative_cases: int = Field(default=0, ge=0)
    """Lung-free real CT cases (:mod:`segmentation.synth.negatives`) trained next to the chest cases."""
    medseg_share: float = Field(default=0.0, ge=0, lt=1)
    """Share of drawn training slices taken from the trainable half of the MedSeg COVID-19 slices
    (:func:`segmentation.synth.medseg.split_medseg`; MedSeg has no lung masks, so the lung head is
    taught only that their labelled lesions are lung); 0 = none."""

    extra_backgrounds: tuple[str, ...] = ()
    """Optional real training backgrounds added to the standard ones
    (:data:`segmentation.synth.backgrounds.EXTRAS`: the NSCLC sub-volumes ``nsclc-2``, ``-3``,
    ``-4``); none in the recipe of stages 1-4."""

    mirror_probability: float = Field(default=0.0, ge=0, le=1)
    """Probability that a training sample is mirrored left/right with its lung sides swapped
    (``augmentation: torch`` only); 0 = never, the recipe of stages 1-4."""

    @model_validator(mode="after")
    def _mirror_needs_torch(self) -> TrainingSettings:
        if self.mirror_probability > 0 and self.augmentation is not Augmentation.TORCH:
            raise ValueError("mirror_probability is implemented for augmentation: torch only")
        return self

    @model_validator(mode="after")
    def _holdout_known(self) -> TrainingSettings:
        from segmentation.synth.backgrounds import CHESTS

        if self.holdout_background not in CHESTS:
            raise ValueError(f"holdout_background must be one of {', '.join(CHESTS)}")
        return self

    @model_validator(mode="after")
    def _extras_known(self) -> TrainingSettings:
        from segmentation.synth.backgrounds import EXTRAS

        unknown = [name for name in self.extra_backgrounds if name not in EXTRAS]
        if unknown or len(set(self.extra_backgrounds)) != len(self.extra_backgrounds):
            raise ValueError(f"extra_backgrounds: each of {', '.join(EXTRAS)} at most once, got {unknown or 'repeats'}")
        return self

    @model_validator(mode="after")
    def _kinds_known(self) -> TrainingSettings:
        from segmentation.synth.lesions import PlanKind
        from segmentation.synth.negatives import NEGATIVE_KIND

        known = {kind.value for kind in PlanKind} | {NEGATIVE_KIND}
        unknown = sorted(set(self.kind_weights) - known)
        if unknown:
            raise ValueError(f"kind_weights: unknown case families {unknown} (known: {', '.join(sorted(known))})")
        if any(not value > 0 for value in self.kind_weights.values()):
            raise ValueError("kind_weights must be positive")
        return self

    @model_validator(mode="after")
    def _crop_multiple(self) -> TrainingSettings:
        if any(v <= 0 or v % 16 for v in self.crop):
            raise ValueError("crop sizes must be positive multiples of 16 (the network's stride)")
        return self


class SegmentationSettings(SettingsModel):
    """How lungs and lesions are segmented."""

    method: SegmentationMethod
    device: DeviceChoice
    weights: Path | None
    threads: int = Field(ge=0)
    batch_slices: int = Field(ge=1)
    min_component_fraction: float = Field(ge=0, le=1)
    min_lesion_voxels: int = Field(ge=0)
    min_lung_volume_ml: float = Field(ge=0)
    classical: ClassicalSettings
    training: TrainingSettings
