"""Machine-readable error and warning codes, and the exceptions that carry them.

Every input the pipeline refuses gets exactly one :class:`ErrorCode` and a sentence a
researcher can act on. Codes are stable strings (they land in ``index.csv``,
``scans.csv`` and ``errors.csv``), so scripts can filter on them; add new members,
never rename existing ones.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why an input file, a series, a scan or a run was refused."""

    # --- files ---------------------------------------------------------------------------
    NOT_DICOM = "NOT_DICOM"
    TRUNCATED_FILE = "TRUNCATED_FILE"
    UNREADABLE_FILE = "UNREADABLE_FILE"
    NO_PIXEL_DATA = "NO_PIXEL_DATA"
    PRIVATE_PIXEL_DATA = "PRIVATE_PIXEL_DATA"
    UNSUPPORTED_TRANSFER_SYNTAX = "UNSUPPORTED_TRANSFER_SYNTAX"
    DECODE_FAILED = "DECODE_FAILED"
    VOLUME_FILE_UNREADABLE = "VOLUME_FILE_UNREADABLE"
    # --- series selection ----------------------------------------------------------------
    NOT_CT = "NOT_CT"
    LOCALIZER = "LOCALIZER"
    DERIVED_IMAGE = "DERIVED_IMAGE"
    SECONDARY_CAPTURE = "SECONDARY_CAPTURE"
    NON_IMAGE_OBJECT = "NON_IMAGE_OBJECT"
    NOT_AXIAL = "NOT_AXIAL"
    NOT_SELECTED = "NOT_SELECTED"
    NO_CT_SERIES = "NO_CT_SERIES"
    # --- geometry ------------------------------------------------------------------------
    MISSING_GEOMETRY = "MISSING_GEOMETRY"
    TOO_FEW_SLICES = "TOO_FEW_SLICES"
    SLICE_SPACING_INCONSISTENT = "SLICE_SPACING_INCONSISTENT"
    DUPLICATE_POSITIONS = "DUPLICATE_POSITIONS"
    GANTRY_TILT = "GANTRY_TILT"
    NON_ORTHONORMAL_DIRECTION = "NON_ORTHONORMAL_DIRECTION"
    MIXED_ORIENTATIONS = "MIXED_ORIENTATIONS"
    MIXED_IMAGE_SIZES = "MIXED_IMAGE_SIZES"
    INCONSISTENT_PIXEL_SPACING = "INCONSISTENT_PIXEL_SPACING"
    # --- configuration and inputs of a run ----------------------------------------------
    CONFIG_INVALID = "CONFIG_INVALID"
    INPUT_NOT_FOUND = "INPUT_NOT_FOUND"
    COHORT_INVALID = "COHORT_INVALID"
    # --- segmentation and execution ------------------------------------------------------
    WEIGHTS_MISSING = "WEIGHTS_MISSING"
    WEIGHTS_CORRUPT = "WEIGHTS_CORRUPT"
    NO_LUNG_FOUND = "NO_LUNG_FOUND"
    SEGMENTATION_FAILED = "SEGMENTATION_FAILED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    WORKER_CRASHED = "WORKER_CRASHED"
    OUTPUT_WRITE_FAILED = "OUTPUT_WRITE_FAILED"
    LABEL_GRID_MISMATCH = "LABEL_GRID_MISMATCH"
    CHECKPOINT_INVALID = "CHECKPOINT_INVALID"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def description(self) -> str:
        """A generic sentence for this code (specific messages add the details)."""
        return _DESCRIPTIONS[self]


class WarningCode(StrEnum):
    """Something was repaired or is worth a look, but the scan was still processed."""

    SPACING_RESAMPLED = "SPACING_RESAMPLED"
    GANTRY_TILT_CORRECTED = "GANTRY_TILT_CORRECTED"
    PADDING_MAPPED = "PADDING_MAPPED"
    SERIES_SPLIT = "SERIES_SPLIT"
    LOSSY_COMPRESSION = "LOSSY_COMPRESSION"
    MALFORMED_ELEMENT = "MALFORMED_ELEMENT"
    FILES_SKIPPED = "FILES_SKIPPED"
    THICK_SLICES = "THICK_SLICES"


_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.NOT_DICOM: "The file is not a DICOM file.",
    ErrorCode.TRUNCATED_FILE: "The file ends before its data is complete (incomplete copy or transfer).",
    ErrorCode.UNREADABLE_FILE: "The file could not be opened or parsed.",
    ErrorCode.NO_PIXEL_DATA: "The DICOM object holds no image pixels.",
    ErrorCode.PRIVATE_PIXEL_DATA: "The image pixels are stored in a vendor-private element that cannot be read.",
    ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX: "No installed decoder handles this DICOM transfer syntax.",
    ErrorCode.DECODE_FAILED: "The compressed pixel data could not be decoded.",
    ErrorCode.VOLUME_FILE_UNREADABLE: "The NIfTI/NRRD/MHA volume file could not be read.",
    ErrorCode.NOT_CT: "The series is not a CT series.",
    ErrorCode.LOCALIZER: "The series is a localizer/scout/topogram, not a CT volume.",
    ErrorCode.DERIVED_IMAGE: "The series is derived (reformat, MIP, projection), not an original acquisition.",
    ErrorCode.SECONDARY_CAPTURE: "The series is a secondary capture (screenshot), not a CT volume.",
    ErrorCode.NON_IMAGE_OBJECT: "The series is a non-image object (SEG, RTSTRUCT, SR, dose report, ...).",
    ErrorCode.NOT_AXIAL: "The slices are not axial (sagittal or coronal reformat).",
    ErrorCode.NOT_SELECTED: "A better series of the same study was selected instead.",
    ErrorCode.NO_CT_SERIES: "The study holds no CT series that can be analysed.",
    ErrorCode.MISSING_GEOMETRY: "Slice position, orientation or pixel spacing is missing.",
    ErrorCode.TOO_FEW_SLICES: "The series has too few slices to cover a chest.",
    ErrorCode.SLICE_SPACING_INCONSISTENT: "The distance between slices varies (missing slices or an irregular series).",
    ErrorCode.DUPLICATE_POSITIONS: "Several slices sit at the same position.",
    ErrorCode.GANTRY_TILT: "The series was acquired with a tilted gantry.",
    ErrorCode.NON_ORTHONORMAL_DIRECTION: "The slice orientation vectors are not orthonormal.",
    ErrorCode.MIXED_ORIENTATIONS: "Slices of the series have different orientations.",
    ErrorCode.MIXED_IMAGE_SIZES: "Slices of the series have different matrix sizes.",
    ErrorCode.INCONSISTENT_PIXEL_SPACING: "Slices of the series have different pixel spacings.",
    ErrorCode.CONFIG_INVALID: "The configuration is invalid.",
    ErrorCode.INPUT_NOT_FOUND: "An input path does not exist.",
    ErrorCode.COHORT_INVALID: "The cohort file is invalid.",
    ErrorCode.WEIGHTS_MISSING: "The model weights file is missing.",
    ErrorCode.WEIGHTS_CORRUPT: "The model weights file does not match its recorded checksum.",
    ErrorCode.NO_LUNG_FOUND: "No lung was found in the volume.",
    ErrorCode.SEGMENTATION_FAILED: "Segmentation failed.",
    ErrorCode.OUT_OF_MEMORY: "The scan ran out of memory.",
    ErrorCode.WORKER_CRASHED: "The worker process processing this scan died.",
    ErrorCode.OUTPUT_WRITE_FAILED: "Results could not be written.",
    ErrorCode.LABEL_GRID_MISMATCH: "A reference label file does not lie on its image's voxel grid.",
    ErrorCode.CHECKPOINT_INVALID: (
        "A training checkpoint cannot be continued (unreadable, or written by a different training run)."
    ),
    ErrorCode.INTERNAL_ERROR: "Unexpected internal error (a bug: please report it with the log).",
}


class LunglesionError(Exception):
    """Base class of every error the pipeline raises on purpose.

    Parameters
    ----------
    code
        The machine-readable reason.
    message
        A sentence for a researcher; defaults to the code's generic description.
    """

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = ErrorCode(code)
        self.message = message or self.code.description
        super().__init__(f"[{self.code.value}] {self.message}")


class ConfigError(LunglesionError):
    """A configuration file or value is invalid."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CONFIG_INVALID, message)


class IngestError(LunglesionError):
    """A file or series cannot be turned into a CT volume.

    ``series_uid`` names the series of a refused file when its header could still be read (a
    file truncated in its pixel data), so that the series can say it lost a file.
    """

    def __init__(self, code: ErrorCode, message: str | None = None, *, series_uid: str = "") -> None:
        super().__init__(code, message)
        self.series_uid = series_uid


class SegmentationError(LunglesionError):
    """The model cannot be loaded or cannot segment a volume."""


class CohortError(LunglesionError):
    """A cohort file is invalid."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.COHORT_INVALID, message)
