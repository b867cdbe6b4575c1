"""The volume plan: the exact output grid of a series, worked out from headers alone.

Indexing turns the headers of a series into a :class:`VolumePlan`; loading follows it
without making any decision of its own. A plan is small and picklable, so a batch run can
ship it to a worker process that only reads pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipeline.ingest.scan import IngestWarning


class SourceKind(StrEnum):
    """Where the pixels of a candidate come from."""

    DICOM = "dicom"
    VOLUME_FILE = "volume_file"


@dataclass(frozen=True, slots=True)
class SliceSource:
    """One source image of a stack, in stack order."""

    path: str
    frame: int | None
    """0-based frame of a multi-frame file; ``None`` for a single-frame file."""
    slope: float
    intercept: float
    pixel_offset: int = -1
    """File offset of the file's native (uncompressed) pixel data; -1 when it must be decoded."""
    pixel_length: int = -1


@dataclass(frozen=True, slots=True)
class PixelFormat:
    """How stored values are laid out and turned into HU (shared by every slice of a series)."""

    padding_value: int | None
    """PixelPaddingValue in stored units, already brought into the stored value range."""
    padding_range_limit: int | None
    transfer_syntax_uids: tuple[str, ...]
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    samples_per_pixel: int = 1


@dataclass(frozen=True, slots=True)
class Interpolation:
    """Output slice ``i`` of a gap-filled stack: ``(1 - weight) * source[lower] + weight * source[upper]``."""

    lower: int
    upper: int
    weight: float


@dataclass(frozen=True, slots=True)
class VolumePlan:
    """The exact volume that :func:`~pipeline.ingest.load_scan` will build, and how.

    ``size``, ``spacing``, ``origin`` and ``direction`` are the output grid (SimpleITK
    conventions: x, y, z order; ``direction`` row-major with the axis directions as columns).
    """

    source_kind: SourceKind
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, float, float, float, float, float, float, float, float]
    normal: tuple[float, float, float]
    """Normal of the acquired slice planes (row x column direction)."""
    slices: tuple[SliceSource, ...] = ()
    rows: int = 0
    columns: int = 0
    pixel_format: PixelFormat | None = None
    interpolation: tuple[Interpolation, ...] = ()
    """Gap filling along the stack (empty when the slices are regular)."""
    tilt_deg: float = 0.0
    """Gantry tilt that the plan corrects by resampling (0 when none)."""
    source_origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    source_axes: tuple[float, ...] = ()
    """Sheared source grid of a tilted stack: row, column and stack unit vectors (9 values)."""
    source_spacing: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Column spacing, row spacing and step along the stack of the sheared source grid (mm)."""
    volume_path: str = ""
    """The file of a volume-file candidate."""
    warnings: tuple[IngestWarning, ...] = ()

    @property
    def n_slices(self) -> int:
        """Slices of the output volume."""
        return self.size[2]

    @property
    def z_extent_mm(self) -> float:
        """Coverage of the output volume along its third axis (slices x spacing)."""
        return self.size[2] * self.spacing[2]
