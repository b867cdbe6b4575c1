"""Lung and COVID-19 lesion segmentation of chest CT (MONAI network with shipped weights + classical baseline).

Public API::

    from segmentation import segment, load_model, LungSegmentation, LungLabel, LesionLabel

``import segmentation`` stays light: torch and MONAI are imported when a model is first loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segmentation.result import LABEL_TABLE, LesionLabel, LungLabel, LungSegmentation
from segmentation.segment import segment, segment_classical
from segmentation.settings import SegmentationSettings

if TYPE_CHECKING:  # pragma: no cover
    from segmentation.inference import LoadedModel


def load_model(weights=None, *, device: str = "auto", threads: int | None = None) -> LoadedModel:
    """Load the network once per process (see :func:`segmentation.inference.load_model`)."""
    from segmentation.inference import load_model as _load

    return _load(weights, device=device, threads=threads)


__all__ = [
    "segment",
    "segment_classical",
    "load_model",
    "LungSegmentation",
    "LungLabel",
    "LesionLabel",
    "LABEL_TABLE",
    "SegmentationSettings",
]
