"""What indexing returns: series candidates, skipped files and study-level findings.

Everything here is a frozen, picklable dataclass holding plain values, so an
:class:`IndexResult` or a single :class:`SeriesCandidate` can be sent to a worker process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pipeline.errors import ErrorCode
from pipeline.ingest.plan import SourceKind, VolumePlan
from pipeline.ingest.scan import IngestWarning, ScanMetadata


@dataclass(frozen=True, slots=True)
class FileIssue:
    """A file that indexing skipped, and why."""

    path: str
    code: ErrorCode
    message: str
    series_uid: str = ""
    """The file's SeriesInstanceUID when its header was readable (e.g. pixels truncated), else empty."""


@dataclass(frozen=True, slots=True)
class StudyIssue:
    """A finding about a whole study (today: ``NO_CT_SERIES``)."""

    patient_id: str
    study_uid: str
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class SeriesCandidate:
    """One series (or one stack of a split series, or one volume file) found by indexing.

    ``plan`` is the exact volume :func:`~pipeline.ingest.load_scan` will build; it is ``None``
    when the headers already rule the series out (``error_code`` then says why).
    ``selected``/``reason``/``error_code`` record the selection rules' verdict: a selected
    candidate has no error code; a usable one that lost to a better series of its study has
    ``NOT_SELECTED``.
    """

    scan_id: str
    """Short stable hash of the series key: safe in logs and file names."""
    source_kind: SourceKind
    patient_id: str
    study_uid: str
    series_uid: str
    series_part: str
    """Empty, or which stack of a split series this is (e.g. ``acquisition 2``)."""
    series_number: int | None
    series_description: str
    study_description: str
    modality: str
    sop_class_uid: str
    image_type: tuple[str, ...] | None
    study_datetime: datetime | date | None
    series_datetime: datetime | date | None
    acquisition_datetime: datetime | date | None
    manufacturer: str
    manufacturer_model: str
    kernel: str
    slice_thickness_mm: float | None
    body_part: str
    contrast_agent: str
    transfer_syntax_uids: tuple[str, ...]
    lossy: bool
    files: tuple[str, ...]
    """Source files, sorted (one entry for a multi-frame file or a volume file)."""
    n_images: int
    """2-D images found (files, or frames of a multi-frame file)."""
    source_path: str
    """The folder holding the files (the file itself for a volume file)."""
    plan: VolumePlan | None
    warnings: tuple[IngestWarning, ...] = ()
    selected: bool = False
    reason: str = ""
    error_code: ErrorCode | None = None
    preferred: bool = True
    """The series the one-per-study selection rules choose for its study (``False``: another
    series of the study, kept by ``selection.series_per_study: all``); duplicate time points
    prefer it."""
    slice_normal: tuple[float, float, float] | None = None
    """Normal of the slice planes (from ImageOrientationPatient), when known."""
    pixel_status: str = "present"
    """:class:`~pipeline.ingest.dicom_header.PixelStatus` value of the series' files."""
    samples_per_pixel: int = 1
    pixel_error: tuple[ErrorCode, str] | None = None
    """Why the pixels cannot be read (no pixel data, private pixel data, no decoder), if so."""
    geometry_error: tuple[ErrorCode, str] | None = None
    """Why no volume can be planned from the headers (missing geometry, duplicates, ...), if so."""

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def size(self) -> tuple[int, int, int] | None:
        """Voxels (x, y, z) of the volume as it would be built."""
        return self.plan.size if self.plan is not None else None

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """Voxel spacing (x, y, z) in mm of the volume as it would be built."""
        return self.plan.spacing if self.plan is not None else None

    @property
    def tilt_deg(self) -> float:
        return self.plan.tilt_deg if self.plan is not None else 0.0

    @property
    def effective_thickness_mm(self) -> float | None:
        """SliceThickness, or the slice spacing where the header has no thickness."""
        if self.slice_thickness_mm:
            return self.slice_thickness_mm
        return self.plan.spacing[2] if self.plan is not None else None

    @property
    def all_warnings(self) -> tuple[IngestWarning, ...]:
        """Indexing warnings plus the plan's repair warnings."""
        return self.warnings + (self.plan.warnings if self.plan is not None else ())

    def metadata(self, *, size: tuple[int, int, int], spacing: tuple[float, float, float]) -> ScanMetadata:
        """The :class:`~pipeline.ingest.scan.ScanMetadata` of this candidate's volume."""
        return ScanMetadata(
            scan_id=self.scan_id,
            patient_id=self.patient_id,
            study_uid=self.study_uid,
            series_uid=self.series_uid,
            series_number=self.series_number,
            series_description=self.series_description,
            modality=self.modality,
            study_datetime=self.study_datetime,
            series_datetime=self.series_datetime,
            acquisition_datetime=self.acquisition_datetime,
            manufacturer=self.manufacturer,
            manufacturer_model=self.manufacturer_model,
            kernel=self.kernel,
            slice_thickness_mm=self.slice_thickness_mm,
            spacing_mm=spacing,
            size=size,
            n_files=self.n_files,
            source_files=tuple(Path(f) for f in self.files),
            transfer_syntax_uid="\\".join(self.transfer_syntax_uids),
            gantry_tilt_deg=self.tilt_deg,
            warnings=self.all_warnings,
            selection_reasons=(self.reason,) if self.reason else (),
            series_part=self.series_part,
            study_description=self.study_description,
            body_part=self.body_part,
            contrast_agent=self.contrast_agent,
            source_kind=self.source_kind.value,
            lossy_compression=self.lossy,
        )


@dataclass(frozen=True, slots=True)
class IndexResult:
    """Every series found under the inputs, the verdict on each, and the files skipped."""

    candidates: tuple[SeriesCandidate, ...]
    """Sorted by patient, study date, study, series number, series, part."""
    skipped: tuple[FileIssue, ...] = ()
    """Files that are not part of any candidate (not DICOM, truncated, DICOMDIR, ...), sorted by path."""
    study_issues: tuple[StudyIssue, ...] = ()
    n_files_seen: int = 0
    elapsed_s: float = field(default=0.0, compare=False)

    @property
    def selected(self) -> tuple[SeriesCandidate, ...]:
        """The candidates chosen for analysis, in candidate order."""
        return tuple(c for c in self.candidates if c.selected)

    def __iter__(self) -> Iterator[SeriesCandidate]:
        return iter(self.candidates)

    def studies(self) -> dict[tuple[str, str], tuple[SeriesCandidate, ...]]:
        """Candidates grouped by ``(patient_id, study_uid)`` (a volume file is a study of its own), in order."""
        grouped: dict[tuple[str, str], list[SeriesCandidate]] = {}
        for candidate in self.candidates:
            study = candidate.study_uid if candidate.source_kind is SourceKind.DICOM else f"volume:{candidate.scan_id}"
            grouped.setdefault((candidate.patient_id, study), []).append(candidate)
        return {key: tuple(members) for key, members in grouped.items()}

    def by_scan_id(self, scan_id: str) -> SeriesCandidate:
        """The candidate with this scan id (``KeyError`` if none)."""
        for candidate in self.candidates:
            if candidate.scan_id == scan_id:
                return candidate
        raise KeyError(scan_id)
