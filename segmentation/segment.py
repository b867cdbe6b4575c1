"""``segment()``: the one entry point other stages call (model or classical baseline, per settings)."""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk

from pipeline.errors import ErrorCode, SegmentationError
from segmentation.result import LungSegmentation
from segmentation.settings import DeviceChoice, SegmentationMethod, SegmentationSettings

log = logging.getLogger(__name__)

#: ``model_id`` of the classical segmenter's results.
CLASSICAL_MODEL_ID = "classical-1"


def default_settings() -> SegmentationSettings:
    """The ``segmentation`` section of ``configs/default.yaml``."""
    from pipeline.config import load_settings

    return load_settings().segmentation


def segment(
    image: sitk.Image,
    *,
    device: str = "auto",
    settings: SegmentationSettings | None = None,
) -> LungSegmentation:
    """Segment the right/left lungs and GGO/consolidation of a chest CT.

    Parameters
    ----------
    image
        3-D SimpleITK image in Hounsfield units (any size, spacing and orientation).
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``. ``"auto"`` defers to
        ``settings.device``.
    settings
        The ``segmentation`` settings; the packaged defaults when omitted.

    Returns
    -------
    LungSegmentation
        ``lungs`` (1 right, 2 left) and ``lesions`` (1 GGO, 2 consolidation) as ``sitkUInt8``
        images on the input grid, plus the model id and the weights' SHA-256.

    Raises
    ------
    SegmentationError
        ``WEIGHTS_MISSING`` / ``WEIGHTS_CORRUPT`` (model files), ``NO_LUNG_FOUND`` (no lung
        in the volume), ``SEGMENTATION_FAILED`` (an image that is not a 3-D scalar volume).
    """
    settings = settings or default_settings()
    if settings.method is SegmentationMethod.CLASSICAL:
        return segment_classical(image, settings=settings)
    from segmentation.inference import load_model, segment_with_model

    chosen = device if str(device) != DeviceChoice.AUTO.value else settings.device.value
    model = load_model(settings.weights, device=chosen, threads=settings.threads or None)
    return segment_with_model(
        image,
        model,
        batch_slices=settings.batch_slices,
        min_component_fraction=settings.min_component_fraction,
        min_lesion_voxels=settings.min_lesion_voxels,
        min_lung_volume_ml=settings.min_lung_volume_ml,
    )


def segmenter_identity(settings: SegmentationSettings) -> tuple[str, str]:
    """(model id, weights SHA-256) of the segmenter ``settings`` choose, with the weights' checksum verified.

    Called once in the main process before any scan, so that a missing or corrupt model stops
    a command at once instead of failing every scan.

    Raises
    ------
    SegmentationError
        ``WEIGHTS_MISSING`` / ``WEIGHTS_CORRUPT``.
    """
    if settings.method is SegmentationMethod.CLASSICAL:
        return CLASSICAL_MODEL_ID, ""
    from segmentation.weights import read_description, verify_checksum

    description = read_description(settings.weights)
    verify_checksum(description)
    return description.model_id, description.sha256


def segment_classical(image: sitk.Image, *, settings: SegmentationSettings | None = None) -> LungSegmentation:
    """The HU-threshold baseline (``method: classical``) with the same result type as the model."""
    from segmentation.classical import ClassicalParameters, segment_lesions, segment_lungs
    from segmentation.grid import canonical_array, label_image_like
    from segmentation.inference import _check_image

    settings = settings or default_settings()
    _check_image(image)
    params = ClassicalParameters(**settings.classical.model_dump())
    hu, canon = canonical_array(image, dtype=np.float32)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    lungs = segment_lungs(hu, canon.spacing_zyx, params).lungs
    voxel_ml = float(np.prod(canon.spacing_zyx)) / 1000.0
    if np.count_nonzero(lungs) * voxel_ml < settings.min_lung_volume_ml:
        raise SegmentationError(ErrorCode.NO_LUNG_FOUND, "the classical segmenter found no lung (air inside a body)")
    lesions = segment_lesions(hu, lungs, canon.spacing_zyx, params)
    return LungSegmentation(
        lungs=label_image_like(lungs, canon, image),
        lesions=label_image_like(lesions, canon, image),
        model_id=CLASSICAL_MODEL_ID,
        model_sha256="",
    )
