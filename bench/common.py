"""What the benchmark scripts share: where the real data is, and the thin-slice resampling.

The scripts run as ``python bench/<script>.py``, so this folder is on ``sys.path`` and they
import this module as ``common``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_OPEN = REPO.parent / "shared" / "data" / "open"


def data_folder(name: str) -> Path:
    """The unpacked folder of the ``../shared/data`` data set ``name`` (unpacks it once)."""
    out = subprocess.run([str(SHARED_OPEN), name], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def resample_slices(image, n_slices: int):
    """``image`` linearly resampled to ``n_slices`` over the same z extent (int16, -1024 outside)."""
    import SimpleITK as sitk

    size, spacing = image.GetSize(), image.GetSpacing()
    step = (size[2] - 1) * spacing[2] / (n_slices - 1)
    return sitk.Resample(
        image,
        [size[0], size[1], n_slices],
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        (spacing[0], spacing[1], step),
        image.GetDirection(),
        -1024,
        sitk.sitkInt16,
    )
