"""One combined label map holding lungs and lesions without loss.

The segmenter returns two label images (lungs: right/left; lesions: GGO/consolidation, a
subset of the lungs). For viewers that show one label map over the CT (3D Slicer, ITK-SNAP)
they are combined into six values, which keep both the side and the lesion class:

====  ======================  ==========================================
value name                    meaning
====  ======================  ==========================================
0     background
1     right_lung              right lung without lesion
2     left_lung               left lung without lesion
3     right_ggo               ground-glass opacity in the right lung
4     left_ggo                ground-glass opacity in the left lung
5     right_consolidation     consolidation in the right lung
6     left_consolidation      consolidation in the left lung
====  ======================  ==========================================

``lungs = combined > 0`` (split by side: odd = right, even = left) and
``lesion class = (combined + 1) // 2 - 1`` for values >= 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from segmentation.result import LungLabel, LungSegmentation


@dataclass(frozen=True)
class CombinedLabel:
    """One entry of the combined label table (written to ``dseg.tsv``)."""

    index: int
    name: str
    abbreviation: str
    color: str


COMBINED_LABELS: tuple[CombinedLabel, ...] = (
    CombinedLabel(1, "right_lung", "RL", "#1b9e77"),
    CombinedLabel(2, "left_lung", "LL", "#377eb8"),
    CombinedLabel(3, "right_ggo", "RGGO", "#ffd92f"),
    CombinedLabel(4, "left_ggo", "LGGO", "#e6ab02"),
    CombinedLabel(5, "right_consolidation", "RCON", "#e41a1c"),
    CombinedLabel(6, "left_consolidation", "LCON", "#a50f15"),
)


def combine_labels(lungs: np.ndarray, lesions: np.ndarray) -> np.ndarray:
    """Combine lung and lesion label arrays (same shape) into the six-value map above.

    Lesion voxels outside the lungs are dropped (the segmenter guarantees there are none).
    """
    if lungs.shape != lesions.shape:
        raise ValueError(f"lung and lesion arrays differ in shape: {lungs.shape} vs {lesions.shape}")
    in_lung = (lungs == LungLabel.RIGHT_LUNG) | (lungs == LungLabel.LEFT_LUNG)
    side = np.where(in_lung, lungs, 0).astype(np.uint8)  # 1 right, 2 left
    lesion = np.where(side > 0, lesions, 0).astype(np.uint8)
    # side 1/2 + 2 * lesion class (0 none, 1 GGO, 2 consolidation) -> 1..6
    return np.where(side > 0, side + 2 * lesion, 0).astype(np.uint8)


def combined_image(segmentation: LungSegmentation) -> sitk.Image:
    """The combined label map of ``segmentation`` as a uint8 image on the CT grid."""
    lungs = sitk.GetArrayViewFromImage(segmentation.lungs)
    lesions = sitk.GetArrayViewFromImage(segmentation.lesions)
    image = sitk.GetImageFromArray(combine_labels(lungs, lesions))
    image.CopyInformation(segmentation.lungs)
    return image


def split_combined(combined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`combine_labels`: ``(lungs, lesions)`` label arrays."""
    lungs = np.where(combined > 0, 2 - (combined % 2), 0).astype(np.uint8)
    lesions = np.where(combined >= 3, (combined + 1) // 2 - 1, 0).astype(np.uint8)
    return lungs, lesions
