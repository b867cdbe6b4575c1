"""Descriptions of the synthetic objects to write: who, when, what, where, how encoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum

from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def deterministic_uid(*parts: object) -> str:
    """A valid DICOM UID derived only from ``parts`` (same parts, same UID)."""
    return str(generate_uid(entropy_srcs=["lunglesion-synthetic", *(str(p) for p in parts)]))


@dataclass(frozen=True)
class Patient:
    """Patient module values (synthetic: never real people)."""

    patient_id: str = "SYN0001"
    name: str = "Synthetic^Patient"
    birth_date: date | None = date(1960, 1, 1)
    sex: str = "O"


@dataclass(frozen=True)
class Study:
    """Study module values; ``study_uid`` defaults to a UID derived from the patient and date."""

    study_date: date = date(2020, 3, 15)
    study_time: time = time(10, 30, 0)
    description: str = "CT CHEST"
    accession_number: str = ""
    study_uid: str = ""
    study_id: str = "1"


@dataclass(frozen=True)
class Series:
    """Series and acquisition values of a CT series."""

    series_number: int = 1
    description: str = "CHEST 1.0 B30f"
    kernel: str = "B30f"
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    modality: str = "CT"
    manufacturer: str = "lunglesion synthetic"
    model: str = "phantom writer"
    body_part: str = "CHEST"
    series_uid: str = ""
    """Empty: derived from the study UID and the series number."""
    frame_of_reference_uid: str = ""
    acquisition_time: time = time(10, 35, 0)
    slice_thickness: float | None = None
    """Empty: the slice step."""
    contrast_agent: str = ""


@dataclass(frozen=True)
class Geometry:
    """Where voxel ``[k, j, i]`` of the HU volume lies (LPS mm).

    Voxel ``[k, j, i]`` (slice, row, column) is written at
    ``origin + i*spacing[0]*row_direction + j*spacing[1]*column + k*spacing[2]*normal``, where
    ``normal = row_direction x column_direction``. With ``tilt_deg`` the column direction is
    rotated about the row direction by the gantry tilt (``column*cos - normal*sin``) while the
    slices still advance along ``normal`` (the table): the sheared stack of a tilted gantry.
    A negative ``spacing[2]`` writes the slices in the opposite direction.
    """

    spacing: tuple[float, float, float] = (0.7, 0.7, 5.0)
    """Column spacing (x), row spacing (y), slice step (mm)."""
    origin: tuple[float, float, float] = (-22.0, -22.0, -100.0)
    row_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    column_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    tilt_deg: float = 0.0


class FileNaming(StrEnum):
    """How the files of a series are named."""

    ORDERED = "ordered"
    """``IM00001.dcm`` ... in slice order."""
    SHUFFLED = "shuffled"
    """``IM00001.dcm`` ... in a random order (file names say nothing about positions)."""
    UID = "uid"
    """The SOP Instance UID, as PACS exports often do."""


@dataclass(frozen=True)
class PixelEncoding:
    """How HU become stored values and bytes.

    ``stored = round((HU - intercept) / slope)`` per slice; ``slopes``/``intercepts`` are one
    value for every slice or one per slice. ``padding_value`` is written (in stored units) where
    the writer's ``padding_mask`` is true and recorded as PixelPaddingValue.
    """

    transfer_syntax: str = ExplicitVRLittleEndian
    slopes: float | tuple[float, ...] = 1.0
    intercepts: float | tuple[float, ...] = -1024.0
    pixel_representation: int = 0
    bits_stored: int = 16
    padding_value: int | None = None
    padding_range_limit: int | None = None


@dataclass(frozen=True)
class Quirks:
    """Archive oddities to reproduce."""

    naming: FileNaming = FileNaming.ORDERED
    suffix: str = ".dcm"
    reverse_instance_numbers: bool = False
    """InstanceNumber counts against the slice positions."""
    drop_slices: tuple[int, ...] = ()
    """Slice indices not written (missing slices: a gap)."""
    duplicate_slices: tuple[int, ...] = ()
    """Slice indices written twice (second copy: new SOP Instance UID, same position)."""
    acquisition_numbers: tuple[int, ...] | None = None
    """AcquisitionNumber per slice (default: 1 for every slice)."""
    uid_salt: str = ""
    """Mixed into the SOP Instance UIDs: a second write of the same series gets new images."""
    extra_elements: dict[str, object] = field(default_factory=dict)
    """Further elements by keyword (e.g. ``{"GantryDetectorTilt": 14.0}``)."""


#: Defaults of the writers' keyword arguments.
DEFAULT_PATIENT = Patient()
DEFAULT_STUDY = Study()
DEFAULT_SERIES = Series()
DEFAULT_GEOMETRY = Geometry()
DEFAULT_ENCODING = PixelEncoding()
DEFAULT_QUIRKS = Quirks()
