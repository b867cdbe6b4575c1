"""The shipped model files: ``weights/<model>.pt`` (state dict) + ``weights/<model>.json`` (everything else).

The JSON is the single description of a model: its id, the SHA-256 of the ``.pt`` file, the
network hyper-parameters and the preprocessing parameters. Inference is configured from it,
so a retrained or fine-tuned model carries its own settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ErrorCode, SegmentationError
from segmentation.network import NetworkSpec
from segmentation.postprocess import Thresholds
from segmentation.preprocess import PreprocessParameters

#: The model that ships with the package.
DEFAULT_MODEL = "lunglesion-seg-v4"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelDescription:
    """Contents of a model's JSON file."""

    model_id: str
    weights_path: Path
    sha256: str
    architecture: NetworkSpec
    preprocessing: PreprocessParameters
    metadata: dict
    thresholds: Thresholds = Thresholds()
    """Decision thresholds (``postprocessing`` in the JSON; 0.5 when absent)."""


def default_description_path() -> Path:
    return WEIGHTS_DIR / f"{DEFAULT_MODEL}.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_description(path: Path | None = None) -> ModelDescription:
    """Read and validate a model JSON (the packaged model when ``path`` is None).

    ``path`` may also name the ``.pt`` file; its ``.json`` sibling is read.

    Raises
    ------
    SegmentationError
        ``WEIGHTS_MISSING`` if the JSON or the weights file does not exist,
        ``WEIGHTS_CORRUPT`` if the JSON is unreadable or incomplete.
    """
    path = Path(path).expanduser() if path is not None else default_description_path()
    if path.suffix == ".pt":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise SegmentationError(
            ErrorCode.WEIGHTS_MISSING,
            f"model description {path} not found; reinstall lunglesion or point segmentation.weights at a "
            "model JSON written by 'lunglesion train'",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        weights_path = path.parent / data["weights_file"]
        description = ModelDescription(
            model_id=str(data["model_id"]),
            weights_path=weights_path,
            sha256=str(data["sha256"]),
            architecture=NetworkSpec.from_dict(data["architecture"]),
            preprocessing=PreprocessParameters.from_dict(data["preprocessing"]),
            metadata={k: v for k, v in data.items() if k not in {"architecture", "preprocessing", "postprocessing"}},
            thresholds=Thresholds.from_dict(data.get("postprocessing")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentationError(ErrorCode.WEIGHTS_CORRUPT, f"model description {path} is invalid ({exc})") from exc
    if not weights_path.is_file():
        raise SegmentationError(
            ErrorCode.WEIGHTS_MISSING,
            f"weights file {weights_path} (named by {path.name}) not found; reinstall lunglesion or retrain",
        )
    return description


def verify_checksum(description: ModelDescription) -> None:
    """Raise ``WEIGHTS_CORRUPT`` unless the weights file matches the recorded SHA-256."""
    actual = sha256_of(description.weights_path)
    if actual != description.sha256:
        raise SegmentationError(
            ErrorCode.WEIGHTS_CORRUPT,
            f"weights file {description.weights_path} has SHA-256 {actual[:12]}..., expected "
            f"{description.sha256[:12]}... (truncated copy or modified file); reinstall lunglesion for the shipped "
            "model, or copy the .pt written by 'lunglesion train' next to its JSON again",
        )


def _unusable(description: ModelDescription, exc: Exception) -> SegmentationError:
    return SegmentationError(
        ErrorCode.WEIGHTS_CORRUPT,
        f"weights file {description.weights_path} does not fit model {description.model_id} ({exc})",
    )


def load_state_dict(description: ModelDescription) -> dict:
    """The model's weights (on the CPU), after checking them against the recorded SHA-256.

    Raises ``WEIGHTS_CORRUPT`` for a checksum mismatch or a file torch cannot read.
    """
    import torch

    verify_checksum(description)
    try:
        return torch.load(description.weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means unusable weights
        raise _unusable(description, exc) from exc


def load_into(network, description: ModelDescription) -> None:
    """Load the checked weights of ``description`` into ``network``; ``WEIGHTS_CORRUPT`` if they do not fit."""
    state = load_state_dict(description)
    try:
        network.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any shape/key problem means unusable weights
        raise _unusable(description, exc) from exc


def write_model(
    *,
    directory: Path,
    model_id: str,
    state_dict: dict,
    architecture: NetworkSpec,
    preprocessing: PreprocessParameters,
    metadata: dict,
    thresholds: Thresholds | None = None,
) -> Path:
    """Write ``<model_id>.pt`` and ``<model_id>.json`` atomically; return the JSON path."""
    import io

    import torch

    from pipeline.io.atomic import write_bytes_atomic, write_text_atomic

    directory = Path(directory)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buffer)
    data = buffer.getvalue()
    weights_path = directory / f"{model_id}.pt"
    write_bytes_atomic(weights_path, data)
    description = {
        "model_id": model_id,
        "weights_file": weights_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "architecture": architecture.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "postprocessing": (thresholds or Thresholds()).to_dict(),
        **metadata,
    }
    json_path = directory / f"{model_id}.json"
    write_text_atomic(json_path, json.dumps(description, indent=2, sort_keys=True) + "\n")
    for path in (weights_path, json_path):  # package data: readable by everyone (temporary files are 0600)
        path.chmod(0o644)
    return json_path
