"""Read and decode the pixel data of DICOM files, turning every failure into an error code."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest.dicom_header import configured_pydicom
from pipeline.ingest.dicom_values import decoder_available
from pipeline.ingest.plan import PixelFormat, SliceSource


def read_stored_pixels(path: str, *, rows: int, columns: int) -> np.ndarray:
    """Stored values of every frame of one file, shape ``(frames, rows, columns)``.

    Raises
    ------
    IngestError
        ``UNREADABLE_FILE`` (vanished or unreadable), ``TRUNCATED_FILE``, ``NO_PIXEL_DATA``,
        ``UNSUPPORTED_TRANSFER_SYNTAX``, ``DECODE_FAILED`` (corrupt stream, unexpected shape,
        colour data).
    """
    pydicom = configured_pydicom()
    try:
        ds = pydicom.dcmread(path, force=True)  # indexing already established that it is DICOM
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise IngestError(ErrorCode.UNREADABLE_FILE, f"{path}: cannot open the file ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - the file changed since indexing or is malformed
        raise IngestError(
            ErrorCode.UNREADABLE_FILE, f"{path}: cannot read the file ({type(exc).__name__}: {exc})"
        ) from None
    if "PixelData" not in ds:
        raise IngestError(ErrorCode.NO_PIXEL_DATA, f"{path}: the file has no pixel data")
    syntax = _transfer_syntax(ds)
    try:
        array = _decode(ds)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many exception types
        if syntax and not decoder_available(syntax):
            raise IngestError(
                ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX, f"{path}: no installed decoder handles transfer syntax {syntax}"
            ) from None
        text = str(exc)
        if "length" in text.lower() and ("expected" in text.lower() or "less" in text.lower()):
            raise IngestError(
                ErrorCode.TRUNCATED_FILE, f"{path}: the pixel data is shorter than the image ({text})"
            ) from None
        raise IngestError(
            ErrorCode.DECODE_FAILED, f"{path}: the pixel data could not be decoded ({type(exc).__name__}: {text})"
        ) from None
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[1:] != (rows, columns):
        raise IngestError(
            ErrorCode.DECODE_FAILED,
            f"{path}: decoded pixel array has shape {array.shape}, "
            f"expected frames of {rows} x {columns} (colour data?)",
        )
    return array


def _transfer_syntax(ds: Any) -> str:
    """The file's transfer syntax; for a data set without file meta, the encoding it was read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not syntax:
        implicit, little = ds.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        if meta is None:
            ds.file_meta = meta = FileMetaDataset()
        meta.TransferSyntaxUID = syntax
    return str(syntax)


def _decode(ds: Any) -> np.ndarray:
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise IngestError(ErrorCode.DECODE_FAILED, f"{samples} samples per pixel (colour image), not a CT image")
    # pydicom applies no modality LUT here: the raw stored values come back, signed or
    # unsigned as PixelRepresentation says (with its sign-correction for JPEG 2000 streams).
    return ds.pixel_array


_LITTLE_ENDIAN_NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
_BIG_ENDIAN_NATIVE = "1.2.840.10008.1.2.2"


def read_native_pixels(
    path: str, *, source: SliceSource, rows: int, columns: int, layout: PixelFormat
) -> np.ndarray | None:
    """Stored values of an uncompressed file read straight from the offset indexing recorded.

    Skips parsing the header a second time (most of the cost of reading a CT slice with pydicom).
    Returns ``None`` when the fast path does not apply (compressed or deflated data, unusual
    layouts, several transfer syntaxes in the series); the caller then decodes with pydicom.

    Raises
    ------
    IngestError
        ``UNREADABLE_FILE`` when the file vanished or changed since indexing, ``TRUNCATED_FILE``
        when it is now shorter than its pixel data.
    """
    if source.pixel_offset < 4 or source.pixel_length <= 0 or len(layout.transfer_syntax_uids) != 1:
        return None
    syntax = layout.transfer_syntax_uids[0]
    if syntax in _LITTLE_ENDIAN_NATIVE:
        order = "<"
    elif syntax == _BIG_ENDIAN_NATIVE:
        order = ">"
    else:
        return None
    if layout.samples_per_pixel != 1 or layout.bits_allocated not in (8, 16, 32):
        return None
    item = layout.bits_allocated // 8
    frame_bytes = rows * columns * item
    n_frames, extra = divmod(source.pixel_length, frame_bytes)
    if n_frames == 0 or extra > 1:  # one padding byte keeps an odd length even
        return None
    try:
        with open(path, "rb") as handle:
            handle.seek(source.pixel_offset - 4)
            declared = handle.read(4)
            data = handle.read(n_frames * frame_bytes)
    except OSError as exc:
        raise IngestError(ErrorCode.UNREADABLE_FILE, f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if len(declared) < 4 or int.from_bytes(declared, "little" if order == "<" else "big") != source.pixel_length:
        raise IngestError(ErrorCode.UNREADABLE_FILE, f"{path}: the file changed since it was indexed")
    if len(data) < n_frames * frame_bytes:
        raise IngestError(ErrorCode.TRUNCATED_FILE, f"{path}: the file is now shorter than its pixel data")
    kind = "i" if layout.pixel_representation == 1 else "u"
    array = np.frombuffer(data, dtype=np.dtype(f"{order}{kind}{item}")).reshape(n_frames, rows, columns)
    array = array.astype(array.dtype.newbyteorder("="), copy=True)
    unused = layout.bits_allocated - layout.bits_stored
    if 0 < unused < layout.bits_allocated:
        if kind == "i":  # sign-extend from the high bit
            array <<= unused
            array >>= unused
        else:  # bits above the high bit are not part of the value (old overlay planes)
            array &= (1 << layout.bits_stored) - 1
    return array
