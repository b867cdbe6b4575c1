"""Running the network on a CT volume: model loading (once per process) and the segmentation pipeline."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.errors import ErrorCode, SegmentationError
from segmentation.grid import Canonical, label_image_like
from segmentation.postprocess import (
    Cleanup,
    EdgeAir,
    Thresholds,
    WorkingFields,
    clean_up,
    edge_air,
    to_input_grid,
)
from segmentation.preprocess import WorkingGrid, context_stack, to_working
from segmentation.result import LungSegmentation
from segmentation.weights import ModelDescription, load_into, read_description

log = logging.getLogger(__name__)

#: Every chest CT in HU has air (lungs, outside the body) below this value.
AIR_CHECK_HU = -500.0

_CACHE: dict[tuple[str, str], LoadedModel] = {}
#: Models built from weights by this process (batch workers report it: one load per worker).
_LOADS = {"count": 0}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode on its device, with the description it was built from."""

    description: ModelDescription
    network: object
    device: str

    @property
    def model_id(self) -> str:
        return self.description.model_id

    @property
    def sha256(self) -> str:
        return self.description.sha256


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    device = str(getattr(device, "value", device)).lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SegmentationError(
            ErrorCode.SEGMENTATION_FAILED,
            "device 'cuda' was requested but no GPU is usable by this process (torch.cuda.is_available() is "
            f"False; torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})",
        )
    if device not in {"cpu", "cuda"}:
        raise SegmentationError(ErrorCode.SEGMENTATION_FAILED, f"unknown device {device!r} (use auto, cpu or cuda)")
    return device


def load_model(weights: str | Path | None = None, *, device: str = "auto", threads: int | None = None) -> LoadedModel:
    """Load (once per process, then reuse) the model described by ``weights`` (a JSON or ``.pt`` path).

    ``None`` loads the model shipped in ``segmentation/weights``. The weights' SHA-256 is checked
    against the JSON before use.

    Raises
    ------
    SegmentationError
        ``WEIGHTS_MISSING`` / ``WEIGHTS_CORRUPT`` if the files are absent, do not match their
        checksum, or do not fit the architecture.
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    resolved = resolve_device(device)
    description = read_description(Path(weights) if weights is not None else None)
    key = (str(description.weights_path.resolve()), resolved)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.description == description:
            return cached
        from segmentation.network import build_network

        network = build_network(description.architecture)
        load_into(network, description)
        network.eval().to(resolved)
        model = LoadedModel(description=description, network=network, device=resolved)
        _CACHE[key] = model
        _LOADS["count"] += 1
        log.debug("loaded model %s on %s", description.model_id, resolved)
        return model


def model_load_count() -> int:
    """How many times this process has loaded a model from its weights files."""
    return _LOADS["count"]


def _check_image(image: sitk.Image) -> None:
    if not isinstance(image, sitk.Image):
        raise SegmentationError(
            ErrorCode.SEGMENTATION_FAILED, f"expected a SimpleITK image, got {type(image).__name__}"
        )
    if image.GetDimension() != 3:
        raise SegmentationError(
            ErrorCode.SEGMENTATION_FAILED, f"expected a 3-D CT volume, got a {image.GetDimension()}-D image"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SegmentationError(
            ErrorCode.SEGMENTATION_FAILED, "expected a scalar (grey-level) CT image, got a vector image"
        )
    if min(image.GetSize()) < 1 or min(image.GetSpacing()) <= 0:
        raise SegmentationError(ErrorCode.SEGMENTATION_FAILED, "the image has an empty size or a non-positive spacing")
    values = sitk.GetArrayViewFromImage(image)
    lowest = float(values.min())  # one pass, no temporary; NaN propagates through min
    if math.isnan(lowest):
        n_nan = int(np.count_nonzero(np.isnan(values)))
        raise SegmentationError(
            ErrorCode.SEGMENTATION_FAILED,
            f"{n_nan} voxels are not a number (NaN); replace them (e.g. by -1024 HU outside the scan) first",
        )
    if lowest > AIR_CHECK_HU:
        # No air at all: no lung to find, or values that are not Hounsfield units (stored pixel
        # values without RescaleSlope/Intercept start at 0, not at -1024).
        raise SegmentationError(
            ErrorCode.NO_LUNG_FOUND,
            f"no voxel is below {AIR_CHECK_HU:g} HU, so there is no air and no lung; "
            "if this is a chest CT, its values are not Hounsfield units (rescale the stored values first)",
        )


def predict(model: LoadedModel, working: np.ndarray, *, batch_slices: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of the lung and lesion heads for every working slice: two (Z, 3, H, W) float32 arrays."""
    import torch

    from segmentation.network import LESION_CHANNELS, LUNG_CHANNELS

    offsets = model.description.preprocessing.context_offsets
    depth = working.shape[0]
    lung = np.empty((depth, 3) + working.shape[1:], np.float32)
    lesion = np.empty((depth, 3) + working.shape[1:], np.float32)
    cuda = model.device == "cuda"
    with torch.inference_mode():
        for z0 in range(0, depth, batch_slices):
            centres = np.arange(z0, min(depth, z0 + batch_slices))
            x = torch.from_numpy(context_stack(working, centres, offsets)).to(model.device)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
                logits = model.network(x)
            logits = logits.float()
            lung[centres] = torch.softmax(logits[:, LUNG_CHANNELS], 1).cpu().numpy()
            lesion[centres] = torch.softmax(logits[:, LESION_CHANNELS], 1).cpu().numpy()
    return lung, lesion


def working_fields(
    image: sitk.Image, model: LoadedModel, *, batch_slices: int
) -> tuple[Canonical, WorkingGrid, WorkingFields, EdgeAir]:
    """Canonical view, working grid, the network's (unthresholded) fields and the edge-connected air."""
    _check_image(image)
    canon = Canonical.of(image)
    hu = canon.forward(sitk.GetArrayViewFromImage(image))
    params = model.description.preprocessing
    working, grid = to_working(hu, canon.spacing_zyx, params)
    lung_prob, lesion_prob = predict(model, working, batch_slices=batch_slices)
    inner = (slice(None), slice(None)) + grid.unpadded()[1:]
    fields = WorkingFields.from_probabilities(lung_prob[inner], lesion_prob[inner])
    outside = edge_air(working[grid.unpadded()], params)
    return canon, grid, fields, outside


def decide(
    fields: WorkingFields,
    outside: EdgeAir,
    grid: WorkingGrid,
    *,
    thresholds: Thresholds,
    min_component_fraction: float,
    min_lesion_voxels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds, clean-up and labels on the input grid (canonical lung and lesion arrays)."""
    fields = fields.with_thresholds(thresholds)
    lungs_working = clean_up(fields, outside, Cleanup(min_component_fraction, min_lesion_voxels))
    return to_input_grid(fields, lungs_working, grid)


def segment_with_model(
    image: sitk.Image,
    model: LoadedModel,
    *,
    batch_slices: int,
    min_component_fraction: float,
    min_lesion_voxels: int,
    min_lung_volume_ml: float,
) -> LungSegmentation:
    """The model pipeline: canonical view -> working grid -> network -> clean-up -> input grid."""
    canon, grid, fields, outside = working_fields(image, model, batch_slices=batch_slices)
    lungs, lesions = decide(
        fields,
        outside,
        grid,
        thresholds=model.description.thresholds,
        min_component_fraction=min_component_fraction,
        min_lesion_voxels=min_lesion_voxels,
    )
    del fields, outside
    voxel_ml = float(np.prod(canon.spacing_zyx)) / 1000.0
    lung_ml = float(np.count_nonzero(lungs)) * voxel_ml
    if lung_ml < min_lung_volume_ml:
        raise SegmentationError(
            ErrorCode.NO_LUNG_FOUND,
            f"the model found {lung_ml:.1f} ml of lung (less than {min_lung_volume_ml:g} ml): "
            "is this a chest CT in Hounsfield units?",
        )
    # One canonical label array is released as soon as its image exists: on a 1000-slice
    # series each is 260 MB.
    lung_image = label_image_like(lungs, canon, image)
    del lungs
    lesion_image = label_image_like(lesions, canon, image)
    del lesions
    return LungSegmentation(
        lungs=lung_image,
        lesions=lesion_image,
        model_id=model.model_id,
        model_sha256=model.sha256,
        device=model.device,
    )
