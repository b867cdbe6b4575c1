"""Building blocks shared by the synthetic writers: the common modules of a DICOM object."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from pipeline.io.atomic import atomic_path
from pipeline.synthetic.spec import Patient, Series, Study, deterministic_uid


def da(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def tm(value: time | None) -> str:
    return value.strftime("%H%M%S") if value else ""


def study_uid(patient: Patient, study: Study) -> str:
    return study.study_uid or deterministic_uid("study", patient.patient_id, study.study_date, study.study_id)


def series_uid(patient: Patient, study: Study, series: Series) -> str:
    return series.series_uid or deterministic_uid("series", study_uid(patient, study), series.series_number)


def frame_of_reference_uid(patient: Patient, study: Study, series: Series) -> str:
    return series.frame_of_reference_uid or deterministic_uid("for", study_uid(patient, study))


def base_dataset(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    patient: Patient,
    study: Study,
    series: Series,
) -> Dataset:
    """A data set with file meta, SOP common, patient, study, series and equipment modules."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UID(sop_class_uid)
    ds.SOPInstanceUID = UID(sop_instance_uid)
    ds.PatientID = patient.patient_id
    ds.PatientName = patient.name
    ds.PatientBirthDate = da(patient.birth_date)
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = UID(study_uid(patient, study))
    ds.StudyDate = da(study.study_date)
    ds.StudyTime = tm(study.study_time)
    ds.StudyDescription = study.description
    ds.AccessionNumber = study.accession_number
    ds.StudyID = study.study_id
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = UID(series_uid(patient, study, series))
    ds.SeriesNumber = series.series_number
    ds.SeriesDescription = series.description
    ds.SeriesDate = da(study.study_date)
    ds.SeriesTime = tm(series.acquisition_time)
    ds.Modality = series.modality
    ds.Manufacturer = series.manufacturer
    ds.ManufacturerModelName = series.model
    ds.BodyPartExamined = series.body_part
    ds.ContentDate = da(study.study_date)
    ds.ContentTime = tm(series.acquisition_time)
    return ds


def set_pixels(ds: Dataset, stored: np.ndarray, *, pixel_representation: int, bits_stored: int) -> None:
    """Image pixel module for monochrome stored values (2-D, or 3-D for multi-frame)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = pixel_representation
    dtype = np.int16 if pixel_representation else np.uint16
    # astype wraps out-of-range values (a padding value written as unsigned 63536 becomes -2000).
    ds.PixelData = np.ascontiguousarray(stored.astype(dtype)).tobytes()


def encode_and_save(ds: Dataset, path: Path, *, transfer_syntax: str, stored: np.ndarray | None = None) -> Path:
    """Compress the pixels with pydicom's encoders where the transfer syntax asks for it, and save atomically."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if stored is not None and transfer_syntax not in (
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        ExplicitVRBigEndian,
    ):
        dtype = np.int16 if ds.PixelRepresentation else np.uint16
        ds.compress(transfer_syntax, arr=np.ascontiguousarray(stored.astype(dtype)), generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


def to_stored(
    hu: np.ndarray, *, slope: float, intercept: float, pixel_representation: int, bits_stored: int
) -> np.ndarray:
    """Stored values ``round((HU - intercept) / slope)``, checked against the stored value range."""
    stored = np.rint((hu.astype(np.float64) - intercept) / slope).astype(np.int64)
    if pixel_representation:
        low, high = -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    else:
        low, high = 0, 2**bits_stored - 1
    if stored.size and (stored.min() < low or stored.max() > high):
        raise ValueError(
            f"HU {hu.min()}..{hu.max()} with slope {slope} and intercept {intercept} give stored values "
            f"{stored.min()}..{stored.max()}, outside the {bits_stored}-bit "
            f"{'signed' if pixel_representation else 'unsigned'} range {low}..{high}"
        )
    return stored
