"""The result of segmenting one CT volume, and the label values it uses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import SimpleITK as sitk


class LungLabel(IntEnum):
    """Values of :attr:`LungSegmentation.lungs`."""

    BACKGROUND = 0
    RIGHT_LUNG = 1
    LEFT_LUNG = 2


class LesionLabel(IntEnum):
    """Values of :attr:`LungSegmentation.lesions` (always inside the lungs)."""

    NONE = 0
    GGO = 1
    CONSOLIDATION = 2


LABEL_TABLE: dict[str, dict[int, str]] = {
    "lungs": {int(label): label.name.lower() for label in LungLabel},
    "lesions": {int(label): label.name.lower() for label in LesionLabel},
}


@dataclass(frozen=True)
class LungSegmentation:
    """Lung and lesion label images on the grid of the input CT.

    Attributes
    ----------
    lungs
        ``sitk.sitkUInt8`` image, :class:`LungLabel` values; lungs include diseased
        (consolidated) lung and exclude the trachea and main bronchi.
    lesions
        ``sitk.sitkUInt8`` image, :class:`LesionLabel` values; GGO and consolidation
        are disjoint and both lie inside ``lungs``.
    model_id
        Identifier of the segmenter (model name + version, or ``classical-<version>``).
    model_sha256
        SHA-256 of the weights file ("" for the classical segmenter).
    device
        Where the segmenter ran: ``"cpu"`` or ``"cuda"``.
    """

    lungs: sitk.Image
    lesions: sitk.Image
    model_id: str
    model_sha256: str
    device: str = "cpu"

    @property
    def labels(self) -> dict[str, dict[int, str]]:
        """The label table: ``{"lungs": {0: "background", 1: "right_lung", ...}, "lesions": {...}}``."""
        return LABEL_TABLE
