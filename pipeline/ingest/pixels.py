"""Read and decode the pixel data of DICOM files, turning every failure into an error code."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest.dicom_header import configured_pydicom
from pipeline.ingest.series import decoder_available


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
