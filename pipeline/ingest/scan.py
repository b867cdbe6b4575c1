"""The :class:`Scan`: one CT volume in HU plus what later stages need to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import SimpleITK as sitk

from pipeline.errors import WarningCode


@dataclass(frozen=True)
class IngestWarning:
    """A repair or an oddity noticed while building the volume."""

    code: WarningCode
    message: str


@dataclass(frozen=True)
class ScanMetadata:
    """Header facts about a selected series, independent of pixel data.

    ``patient_id`` is protected health information: never log it unless the user
    asked for ``--log-phi``; use ``scan_id`` in logs instead.
    """

    scan_id: str
    """Short stable identifier, safe for logs and file names (hash of the series key)."""
    patient_id: str
    study_uid: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    study_datetime: datetime | date | None
    series_datetime: datetime | date | None
    acquisition_datetime: datetime | date | None
    manufacturer: str
    manufacturer_model: str
    kernel: str
    slice_thickness_mm: float | None
    spacing_mm: tuple[float, float, float]
    """Voxel spacing (x, y, z) of the volume as built."""
    size: tuple[int, int, int]
    """Voxel count (x, y, z) of the volume as built."""
    n_files: int
    source_files: tuple[Path, ...]
    transfer_syntax_uid: str = ""
    gantry_tilt_deg: float = 0.0
    warnings: tuple[IngestWarning, ...] = ()
    selection_reasons: tuple[str, ...] = ()
    series_part: str = ""
    """Empty, or which stack of a split series this is (e.g. ``acquisition 2``)."""
    study_description: str = ""
    body_part: str = ""
    contrast_agent: str = ""
    """ContrastBolusAgent as written by the scanner (empty: none recorded)."""
    source_kind: str = "dicom"
    """``dicom`` or ``volume_file`` (NIfTI/NRRD/MHA read as HU)."""
    lossy_compression: bool = False
    """The pixels went through lossy compression (LossyImageCompression or a lossy transfer syntax)."""


@dataclass(frozen=True)
class Scan:
    """A CT volume in Hounsfield units (int16, LPS geometry) with its metadata."""

    image: sitk.Image
    meta: ScanMetadata
    extra: dict[str, str] = field(default_factory=dict)
