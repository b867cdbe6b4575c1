"""The MedSeg COVID-19 slices (``medseg-covid-2d-train``) mapped back to approximate HU.

The slices are 8-bit JPEGs, window-levelled and cropped, stored transposed (rows run from the
patient's right to left). The HU mapping is a per-image linear fit through two anchors:
air (the 0.5th intensity percentile) = -1000 HU and the mode of the soft-tissue peak
(intensities above 60 % of the range) = +40 HU. The pixel spacing is unknown; 0.75 mm is
assumed (typical of the source CTs' 512-pixel reconstructions). This is a real-appearance
check, not an HU-exact one: results on these slices are reported with that caveat.

The crops are tight: on many slices the lung reaches the edge of the image and the chest wall
is cut into pieces. A segmenter that crops to the body can only label what its crop keeps;
:func:`in_field` marks the pixels inside ``segment()``'s body crop, so the check can report how
much of the reference is out of reach and score the model inside the rest. (Up to lunglesion 0.5
the crop ended at the largest piece and all air reaching the edge was outside the patient, which
put 41 % of the check half's reference lesion out of reach; since 0.6 none is.)

The 50 slices are split in two halves by number (:func:`split_medseg`; MedSeg's own slice numbers
0-31 and 32-67): the first half may be used as 2-D training signal (``medseg_share`` in the
training settings; MedSeg has no lung masks, so the lung head is taught only that the labelled
lesions are lung), the second half is never trained on and is the real-appearance check. The split
is contiguous because the slices carry no patient identity and neighbouring numbers are the
likeliest to share a patient; it was fixed before any model was trained on the slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ASSUMED_SPACING_MM = 0.75
AIR_HU = -1000.0
SOFT_TISSUE_HU = 40.0


@dataclass(frozen=True)
class MedSegSlice:
    name: str
    hu: np.ndarray
    """Canonical (rows anterior->posterior, columns right->left) approximate HU, float32."""
    labels: np.ndarray
    """0 none, 1 GGO, 2 consolidation (same orientation)."""
    air_intensity: float
    tissue_intensity: float

    def image(self, slices: int = 1) -> sitk.Image:
        """As a 3-D int16 image (the slice repeated ``slices`` times, 2.5 mm apart)."""
        volume = np.repeat(np.rint(self.hu).astype(np.int16)[None], slices, axis=0)
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing((ASSUMED_SPACING_MM, ASSUMED_SPACING_MM, 2.5))
        return image


def intensity_to_hu(pixels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Linear map of one 8-bit slice to HU from its air and soft-tissue anchors."""
    values = pixels.astype(np.float32)
    air = float(np.percentile(values, 0.5))
    bright = values[values > 0.6 * 255]
    if bright.size < 100:
        tissue = 230.0
    else:
        hist = np.bincount(bright.astype(np.int64), minlength=256)
        tissue = float(np.argmax(hist[:255]))  # the saturated 255 bin is not a tissue peak
    tissue = max(tissue, air + 50.0)
    slope = (SOFT_TISSUE_HU - AIR_HU) / (tissue - air)
    return AIR_HU + (values - air) * slope, air, tissue


def load_medseg(folder: Path) -> list[MedSegSlice]:
    """All slices of ``TrainingSet/MultiClassInfection-Train`` under a data-set folder, sorted by number."""
    from PIL import Image

    base = Path(folder) / "TrainingSet" / "MultiClassInfection-Train"
    out = []
    for image_path in sorted((base / "Imgs").glob("*.jpg"), key=lambda p: int(p.stem)):
        label_path = base / "GT" / f"{image_path.stem}.png"
        pixels = np.asarray(Image.open(image_path).convert("L"))
        labels = np.asarray(Image.open(label_path))
        hu, air, tissue = intensity_to_hu(pixels)
        out.append(
            MedSegSlice(
                name=image_path.stem,
                hu=np.ascontiguousarray(hu.T),
                labels=np.ascontiguousarray(labels.T.astype(np.uint8)),
                air_intensity=air,
                tissue_intensity=tissue,
            )
        )
    return out


def split_medseg(slices: list[MedSegSlice]) -> tuple[list[MedSegSlice], list[MedSegSlice]]:
    """``(trainable, check)``: the lower-numbered half of ``slices`` and the rest (the check gets the odd one)."""
    ordered = sorted(slices, key=lambda item: int(item.name))
    half = len(ordered) // 2
    return ordered[:half], ordered[half:]


def in_field(item: MedSegSlice, *, threshold_hu: float = -500.0, margin_mm: float = 5.0) -> np.ndarray:
    """Pixels of a slice inside the body crop, the only part of an image ``segment()`` can label.

    The defaults are the shipped model's body threshold and crop margin
    (:class:`~segmentation.preprocess.PreprocessParameters`). A property of the image, not of a
    model. (Edge-connected air inside the crop is within reach unless it is pure air: where the
    network calls it lung, it is a lung cut by the field of view, see
    :func:`segmentation.postprocess.cannot_be_lung`.)
    """
    from segmentation.preprocess import body_box

    rows, cols = body_box(
        item.hu[None], (2.5, ASSUMED_SPACING_MM, ASSUMED_SPACING_MM), threshold_hu=threshold_hu, margin_mm=margin_mm
    )
    field = np.zeros(item.hu.shape, bool)
    field[rows, cols] = True
    return field
