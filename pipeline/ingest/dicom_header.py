"""Read what indexing needs from one DICOM file, without its pixels.

:func:`read_dicom_header` parses a file up to its pixel data (``stop_before_pixels``),
checks that the pixel data element is there and complete (without reading it), and returns
a small picklable :class:`DicomHeader`: series-level facts plus one :class:`FrameInfo`
per image (one for a classic CT file, one per frame for enhanced multi-frame CT, whose
geometry comes from the per-frame and shared functional groups).

Every problem becomes an :class:`~pipeline.errors.IngestError` with a file-level code
(``NOT_DICOM``, ``TRUNCATED_FILE``, ``UNREADABLE_FILE``); nothing else escapes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest.sop_classes import MEDIA_STORAGE_DIRECTORY, uses_functional_groups

log = logging.getLogger(__name__)

_PIXEL_DATA = 0x7FE00010
_OTHER_PIXEL_TAGS = {0x7FE00008: "Float Pixel Data", 0x7FE00009: "Double Float Pixel Data"}
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_DEFLATED = "1.2.840.10008.1.2.1.99"
_LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
    }
)


class PixelStatus(StrEnum):
    """Where a file keeps its image pixels."""

    PRESENT = "present"
    """A standard Pixel Data element, complete as far as its length says."""
    ABSENT = "absent"
    """No pixel data at all."""
    PRIVATE = "private"
    """No standard Pixel Data, but a large vendor-private element that holds the image."""


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Geometry and value mapping of one 2-D image (a file, or one frame of a multi-frame file)."""

    path: str
    frame: int | None
    """0-based frame index inside a multi-frame file; ``None`` for a single-frame file."""
    sop_instance_uid: str
    position: tuple[float, float, float] | None
    """ImagePositionPatient: centre of the first transmitted pixel, LPS mm."""
    orientation: tuple[float, float, float, float, float, float] | None
    """ImageOrientationPatient: row direction cosines, then column direction cosines."""
    pixel_spacing: tuple[float, float] | None
    """PixelSpacing as stored: (distance between rows, distance between columns), mm."""
    slope: float
    intercept: float
    acquisition_number: int | None
    instance_number: int | None
    frame_type: tuple[str, ...] | None = None
    """FrameType of an enhanced frame (used instead of ImageType when present)."""
    pixel_offset: int = -1
    """File offset of the file's native Pixel Data value (-1: compressed, deflated or unknown)."""
    pixel_length: int = -1
    """Byte length of that value (all frames of the file)."""


@dataclass(frozen=True, slots=True)
class DicomHeader:
    """What indexing knows about one DICOM file (no pixel values)."""

    path: str
    size_bytes: int
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    patient_id: str
    study_uid: str
    series_uid: str
    series_number: int | None
    series_description: str
    study_description: str
    study_date: str
    study_time: str
    series_date: str
    series_time: str
    acquisition_date: str
    acquisition_time: str
    acquisition_datetime: str
    manufacturer: str
    model: str
    kernel: str
    image_type: tuple[str, ...] | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    gantry_tilt_tag: float | None
    body_part: str
    contrast_agent: str
    rows: int | None
    columns: int | None
    samples_per_pixel: int
    photometric: str
    bits_allocated: int | None
    bits_stored: int | None
    pixel_representation: int | None
    padding_value: int | None
    padding_range_limit: int | None
    number_of_frames: int
    functional_groups: bool
    pixel_status: PixelStatus
    lossy: bool
    frames: tuple[FrameInfo, ...]
    malformed: tuple[str, ...] = ()
    """Keywords of elements whose value could not be parsed (ignored)."""
    concatenation_uid: str = ""
    """ConcatenationUID (0020,9161): multi-frame files sharing it are parts of one image (empty: none)."""

    @property
    def is_dicomdir(self) -> bool:
        return self.sop_class_uid == MEDIA_STORAGE_DIRECTORY

    @property
    def lossy_encoding(self) -> bool:
        """The pixels are stored in a lossy transfer syntax (``lossy`` also counts earlier lossy steps)."""
        return self.transfer_syntax_uid in _LOSSY_SYNTAXES


def read_dicom_header(path: Path) -> DicomHeader:
    """Read one file's header and check its pixel data element without decoding it.

    Parameters
    ----------
    path
        A file that may or may not be DICOM (with or without preamble, any suffix).

    Raises
    ------
    IngestError
        ``NOT_DICOM`` for anything that is not a DICOM data set, ``TRUNCATED_FILE`` for a
        file that ends before its data does, ``UNREADABLE_FILE`` for a file that cannot be
        opened or parsed.
    """
    pydicom = configured_pydicom()
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fp:
            head = fp.read(132)
            if not head:
                raise IngestError(ErrorCode.TRUNCATED_FILE, "the file is empty (0 bytes)")
            has_preamble = len(head) == 132 and head[128:132] == b"DICM"
            if not has_preamble and not _looks_like_raw_dataset(head):
                raise IngestError(
                    ErrorCode.NOT_DICOM, "not a DICOM file (no 'DICM' marker and no DICOM data set at the start)"
                )
            fp.seek(0)
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=not has_preamble)
            pixel_element, pixel_problem = _inspect_pixel_element(fp, ds, fp.tell(), size)
    except IngestError:
        raise
    except InvalidDicomError as exc:
        raise IngestError(ErrorCode.NOT_DICOM, f"not a DICOM file ({exc})") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise IngestError(ErrorCode.UNREADABLE_FILE, f"cannot open the file ({exc.strerror})") from None
    except (EOFError, struct.error) as exc:
        raise IngestError(ErrorCode.TRUNCATED_FILE, f"the file ends in the middle of its header ({exc})") from None
    except OSError as exc:
        if "No tag to read" in str(exc) or "end of file" in str(exc).lower():
            raise IngestError(ErrorCode.TRUNCATED_FILE, "the file ends in the middle of its header") from None
        raise IngestError(ErrorCode.UNREADABLE_FILE, f"cannot read the file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed input
        raise IngestError(
            ErrorCode.UNREADABLE_FILE, f"not a readable DICOM data set ({type(exc).__name__}: {exc})"
        ) from None

    if pixel_problem is not None:
        try:  # only to name the series that lost this file; a malformed value names none
            series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip().strip("\x00")
        except Exception:  # noqa: BLE001 - pydicom raises many types on malformed values
            series_uid = ""
        raise IngestError(ErrorCode.TRUNCATED_FILE, pixel_problem, series_uid=series_uid)
    if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
        if not has_preamble:
            raise IngestError(ErrorCode.NOT_DICOM, "not a DICOM file (no preamble and no SOP class or series UID)")
        if len(ds) == 0:
            raise IngestError(ErrorCode.TRUNCATED_FILE, "the file ends right after its file meta information")
    try:
        return _build_header(ds, path=path, size=size, pixel_element=pixel_element)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed values anywhere in the header
        raise IngestError(ErrorCode.UNREADABLE_FILE, f"malformed DICOM header ({type(exc).__name__}: {exc})") from None


@functools.cache
def configured_pydicom() -> Any:
    """Import pydicom, set up to read what archives hold rather than what the standard allows.

    Value validation on reading is switched off (invalid UIDs, over-long strings and the like
    would otherwise each emit a warning that may echo header values); values of the wrong
    length for their VR (a known quirk of some vendors' private tags) are read as UN instead
    of raising. Ingestion reports what matters through its own codes.
    """
    import pydicom
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    config.convert_wrong_length_to_UN = True
    return pydicom


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A DICOM data set without preamble starts with a group 0002 or 0008 element (little endian)."""
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    return group in (0x0002, 0x0008) and element <= 0x0020


@dataclass(frozen=True, slots=True)
class _PixelElement:
    tag: int
    value_offset: int
    length: int
    """Value length in bytes; ``-1`` for encapsulated (compressed) or deflated data."""


def _inspect_pixel_element(fp: Any, ds: Any, position: int, size: int) -> tuple[_PixelElement | None, str | None]:
    """Look at the element where parsing stopped: (pixel element or None, truncation message or None).

    ``dcmread(stop_before_pixels=True)`` leaves the file positioned at the start of the pixel
    data element (or at the end of the data set when there is none), so the element header can
    be checked against the file size without reading the pixel values.
    """
    transfer_syntax = str(getattr(getattr(ds, "file_meta", None), "get", lambda *_: "")("TransferSyntaxUID", "") or "")
    if transfer_syntax == _DEFLATED:
        # The stream is deflated: positions in the file mean nothing. Deflated files are small and
        # rare, so read the whole data set once to find the pixel element.
        fp.seek(0)
        full = configured_pydicom().dcmread(fp, force=True)
        return (_PixelElement(_PIXEL_DATA, -1, -1) if "PixelData" in full else None), None

    implicit, little = _encoding(ds)
    fp.seek(position)
    header = fp.read(12)
    if len(header) < 8:
        if len(header) > 0:
            return None, "the file ends inside the header of its pixel data"
        return None, _last_element_truncated(ds, size)
    endian = "<" if little else ">"
    group, element = struct.unpack(f"{endian}HH", header[:4])
    tag = (group << 16) | element
    if tag != _PIXEL_DATA and tag not in _OTHER_PIXEL_TAGS:
        return None, None
    if implicit:
        (length,) = struct.unpack(f"{endian}L", header[4:8])
        value_start = position + 8
    else:
        if len(header) < 12:
            return None, "the file ends inside the header of its pixel data"
        (length,) = struct.unpack(f"{endian}L", header[8:12])
        value_start = position + 12
    if length == _UNDEFINED_LENGTH:
        # Encapsulated (compressed) frames end with a sequence delimiter item.
        fp.seek(max(value_start, size - 4096))
        tail = fp.read()
        if _SEQUENCE_DELIMITER not in tail:
            return None, "the file ends inside its compressed pixel data (no end-of-sequence marker)"
        return _PixelElement(tag, value_start, -1), None
    if value_start + length > size:
        have = max(0, size - value_start)
        return None, f"the file holds {have} of the {length} bytes of its pixel data"
    return _PixelElement(tag, value_start, length), None


def _last_element_truncated(ds: Any, size: int) -> str | None:
    """Detect a header cut inside its last element (values shorter than declared, leftover bytes)."""
    try:
        elements = list(ds._dict.values())  # raw elements: declared length and file offset
    except AttributeError:
        return None
    if not elements:
        return None
    last = elements[-1]
    length = getattr(last, "length", None)
    value_tell = getattr(last, "value_tell", None)
    value = getattr(last, "value", None)
    if length is None or value_tell is None or length == _UNDEFINED_LENGTH:
        return None
    if isinstance(value, bytes | bytearray) and len(value) < length:
        return "the file ends in the middle of its header"
    if value_tell + length < size:
        return "the file ends in the middle of its header"
    return None


def _encoding(ds: Any) -> tuple[bool, bool]:
    encoding = getattr(ds, "original_encoding", None)
    if encoding and encoding[0] is not None:
        return bool(encoding[0]), bool(encoding[1])
    return bool(getattr(ds, "is_implicit_VR", False)), bool(getattr(ds, "is_little_endian", True))


class _Reader:
    """Typed, fault-tolerant access to header values; malformed values are recorded, not raised."""

    def __init__(self) -> None:
        self.malformed: list[str] = []

    def _raw(self, ds: Any, keyword: str) -> Any:
        try:
            element = ds.get(keyword)
        except Exception:  # noqa: BLE001 - a malformed value must not sink the file
            self.malformed.append(keyword)
            return None
        return element

    def text(self, ds: Any, keyword: str) -> str:
        value = self._raw(ds, keyword)
        if value is None:
            return ""
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            return "\\".join(str(v).strip() for v in value)
        return str(value).strip()

    def number(self, ds: Any, keyword: str, convert: Callable[[Any], Any] = float) -> Any:
        value = self._raw(ds, keyword)
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            if len(value) == 0:
                return None
            value = value[0]
        try:
            return convert(value)
        except (TypeError, ValueError):
            self.malformed.append(keyword)
            return None

    def vector(self, ds: Any, keyword: str, length: int) -> tuple[float, ...] | None:
        value = self._raw(ds, keyword)
        if value is None:
            return None
        try:
            numbers = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            self.malformed.append(keyword)
            return None
        if len(numbers) != length or any(n != n for n in numbers):  # NaN check
            self.malformed.append(keyword)
            return None
        return numbers

    def values(self, ds: Any, keyword: str) -> tuple[str, ...] | None:
        value = self._raw(ds, keyword)
        if value is None:
            return None
        if isinstance(value, str):
            items = value.split("\\")
        else:
            items = [str(v) for v in value]
        return tuple(item.strip().upper() for item in items)


def _int(value: Any) -> int:
    return int(float(value))


def _build_header(ds: Any, *, path: Path, size: int, pixel_element: _PixelElement | None) -> DicomHeader:
    read = _Reader()
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not transfer_syntax:
        implicit, little = _encoding(ds)
        transfer_syntax = (
            "1.2.840.10008.1.2" if implicit else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
        )
    sop_class = read.text(ds, "SOPClassUID") or (
        str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    )
    sop_instance = read.text(ds, "SOPInstanceUID") or (
        str(meta.get("MediaStorageSOPInstanceUID", "")) if meta is not None else ""
    )
    rows = read.number(ds, "Rows", _int)
    columns = read.number(ds, "Columns", _int)
    bits_allocated = read.number(ds, "BitsAllocated", _int)
    pixel_representation = read.number(ds, "PixelRepresentation", _int)
    functional = uses_functional_groups(sop_class) and "PerFrameFunctionalGroupsSequence" in ds
    n_frames = read.number(ds, "NumberOfFrames", _int) or 1

    if pixel_element is not None and pixel_element.tag == _PIXEL_DATA:
        status = PixelStatus.PRESENT
    elif pixel_element is None and _has_private_pixel_blob(ds, rows, columns, bits_allocated):
        status = PixelStatus.PRIVATE
    else:
        status = PixelStatus.ABSENT

    if functional:
        frames, kernel, thickness = _enhanced_frames(
            ds, read, path=str(path), sop_instance=sop_instance, n_frames=n_frames
        )
    else:
        kernel = read.text(ds, "ConvolutionKernel")
        thickness = read.number(ds, "SliceThickness")
        slope = read.number(ds, "RescaleSlope")
        intercept = read.number(ds, "RescaleIntercept")
        frames = (
            FrameInfo(
                path=str(path),
                frame=None if n_frames == 1 else 0,
                sop_instance_uid=sop_instance,
                position=read.vector(ds, "ImagePositionPatient", 3),  # type: ignore[arg-type]
                orientation=read.vector(ds, "ImageOrientationPatient", 6),  # type: ignore[arg-type]
                pixel_spacing=read.vector(ds, "PixelSpacing", 2),  # type: ignore[arg-type]
                slope=1.0 if slope in (None, 0.0) else slope,
                intercept=0.0 if intercept is None else intercept,
                acquisition_number=read.number(ds, "AcquisitionNumber", _int),
                instance_number=read.number(ds, "InstanceNumber", _int),
            ),
        )

    if status is PixelStatus.PRESENT and pixel_element is not None and pixel_element.length >= 0:
        frames = tuple(
            dataclasses.replace(f, pixel_offset=pixel_element.value_offset, pixel_length=pixel_element.length)
            for f in frames
        )
    lossy_flag = read.text(ds, "LossyImageCompression")
    padding = read.number(ds, "PixelPaddingValue", _int)
    padding_limit = read.number(ds, "PixelPaddingRangeLimit", _int)
    return DicomHeader(
        path=str(path),
        size_bytes=size,
        transfer_syntax_uid=transfer_syntax,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        modality=read.text(ds, "Modality").upper(),
        patient_id=read.text(ds, "PatientID"),
        study_uid=read.text(ds, "StudyInstanceUID"),
        series_uid=read.text(ds, "SeriesInstanceUID"),
        series_number=read.number(ds, "SeriesNumber", _int),
        series_description=read.text(ds, "SeriesDescription"),
        study_description=read.text(ds, "StudyDescription"),
        study_date=read.text(ds, "StudyDate"),
        study_time=read.text(ds, "StudyTime"),
        series_date=read.text(ds, "SeriesDate"),
        series_time=read.text(ds, "SeriesTime"),
        acquisition_date=read.text(ds, "AcquisitionDate"),
        acquisition_time=read.text(ds, "AcquisitionTime"),
        acquisition_datetime=read.text(ds, "AcquisitionDateTime"),
        manufacturer=read.text(ds, "Manufacturer"),
        model=read.text(ds, "ManufacturerModelName"),
        kernel=kernel,
        image_type=read.values(ds, "ImageType"),
        slice_thickness=thickness,
        spacing_between_slices=read.number(ds, "SpacingBetweenSlices"),
        gantry_tilt_tag=read.number(ds, "GantryDetectorTilt"),
        body_part=read.text(ds, "BodyPartExamined"),
        contrast_agent=read.text(ds, "ContrastBolusAgent"),
        rows=rows,
        columns=columns,
        samples_per_pixel=read.number(ds, "SamplesPerPixel", _int) or 1,
        photometric=read.text(ds, "PhotometricInterpretation").upper(),
        bits_allocated=bits_allocated,
        bits_stored=read.number(ds, "BitsStored", _int),
        pixel_representation=pixel_representation,
        padding_value=padding,
        padding_range_limit=padding_limit,
        number_of_frames=n_frames,
        functional_groups=functional,
        pixel_status=status,
        lossy=lossy_flag == "01" or transfer_syntax in _LOSSY_SYNTAXES,
        frames=frames,
        concatenation_uid=read.text(ds, "ConcatenationUID"),
        malformed=tuple(sorted(set(read.malformed))),
    )


def _has_private_pixel_blob(ds: Any, rows: int | None, columns: int | None, bits_allocated: int | None) -> bool:
    """An image header without Pixel Data whose private elements hold image-sized binary data."""
    if not rows or not columns:
        return False
    uncompressed = rows * columns * max(1, (bits_allocated or 16) // 8)
    threshold = max(256, uncompressed // 20)  # even a proprietary codec keeps 5 % of a CT image
    try:
        for element in ds._dict.values():
            binary = str(getattr(element, "VR", "")) in ("OB", "OW", "UN", "OF")
            if element.tag.group % 2 == 1 and binary and (getattr(element, "length", 0) or 0) >= threshold:
                return True
    except AttributeError:
        return False
    return False


def _first_item(container: Any, sequence: str) -> Any:
    try:
        value = container.get(sequence)
    except Exception:  # noqa: BLE001
        return None
    if not value:
        return None
    return value[0]


def _group_value(per_frame: Any, shared: Any, sequence: str, getter: Callable[[Any], Any]) -> Any:
    """Value of a functional-group attribute: the frame's own group first, then the shared one."""
    for container in (per_frame, shared):
        if container is None:
            continue
        item = _first_item(container, sequence)
        if item is not None:
            value = getter(item)
            if value is not None:
                return value
    return None


def _enhanced_frames(
    ds: Any, read: _Reader, *, path: str, sop_instance: str, n_frames: int
) -> tuple[tuple[FrameInfo, ...], str, float | None]:
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame_items = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    kernel = _group_value(
        None, shared, "CTReconstructionSequence", lambda item: read.text(item, "ConvolutionKernel") or None
    )
    kernel = kernel or read.text(ds, "ConvolutionKernel")
    thickness = _group_value(None, shared, "PixelMeasuresSequence", lambda item: read.number(item, "SliceThickness"))
    top_acquisition = read.number(ds, "AcquisitionNumber", _int)
    frames = []
    for index in range(n_frames):
        per_frame = per_frame_items[index] if index < len(per_frame_items) else None
        position = _group_value(
            per_frame, shared, "PlanePositionSequence", lambda i: read.vector(i, "ImagePositionPatient", 3)
        )
        orientation = _group_value(
            per_frame, shared, "PlaneOrientationSequence", lambda i: read.vector(i, "ImageOrientationPatient", 6)
        )
        spacing = _group_value(per_frame, shared, "PixelMeasuresSequence", lambda i: read.vector(i, "PixelSpacing", 2))
        slope = _group_value(
            per_frame, shared, "PixelValueTransformationSequence", lambda i: read.number(i, "RescaleSlope")
        )
        intercept = _group_value(
            per_frame, shared, "PixelValueTransformationSequence", lambda i: read.number(i, "RescaleIntercept")
        )
        frame_type = _group_value(per_frame, shared, "CTImageFrameTypeSequence", lambda i: read.values(i, "FrameType"))
        acquisition = _group_value(
            per_frame, None, "FrameContentSequence", lambda i: read.number(i, "FrameAcquisitionNumber", _int)
        )
        if thickness is None:
            thickness = _group_value(
                per_frame, None, "PixelMeasuresSequence", lambda i: read.number(i, "SliceThickness")
            )
        frames.append(
            FrameInfo(
                path=path,
                frame=index,
                sop_instance_uid=sop_instance,
                position=position,
                orientation=orientation,
                pixel_spacing=spacing,
                slope=1.0 if slope in (None, 0.0) else slope,
                intercept=0.0 if intercept is None else intercept,
                acquisition_number=acquisition if acquisition is not None else top_acquisition,
                instance_number=index + 1,
                frame_type=frame_type,
            )
        )
    return tuple(frames), kernel, thickness
