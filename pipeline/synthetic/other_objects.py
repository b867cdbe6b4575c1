"""Objects that share a folder with CT series but must not be analysed.

Scouts (localizers), reformats, secondary captures (dose screens) and a dose structured
report: what a real study export holds next to its axial series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.synthetic.ct_series import WrittenSeries, write_ct_series
from pipeline.synthetic.dataset import base_dataset, encode_and_save, series_uid, set_pixels, study_uid
from pipeline.synthetic.spec import (
    DEFAULT_GEOMETRY,
    DEFAULT_PATIENT,
    DEFAULT_STUDY,
    Geometry,
    Patient,
    Series,
    Study,
    deterministic_uid,
)

SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
XRAY_RADIATION_DOSE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.67"

LOCALIZER_SERIES = Series(
    series_number=1,
    description="Topogram 0.6 T20s",
    kernel="T20s",
    image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
)
REFORMAT_SERIES = Series(
    series_number=501,
    description="COR MPR 3.0",
    kernel="B30f",
    image_type=("DERIVED", "SECONDARY", "MPR"),
)
DOSE_SCREEN_SERIES = Series(
    series_number=999, description="Dose Report", kernel="", image_type=("DERIVED", "SECONDARY", "OTHER")
)
DOSE_SR_SERIES = Series(series_number=998, description="Radiation Dose Information", kernel="", modality="SR")


def write_localizer(
    directory: Path,
    *,
    patient: Patient = DEFAULT_PATIENT,
    study: Study = DEFAULT_STUDY,
    series: Series = LOCALIZER_SERIES,
    shape: tuple[int, int] = (48, 64),
    pixel_spacing: float = 4.0,
    seed: int = 0,
) -> WrittenSeries:
    """A coronal projection scout: one image, ImageType ORIGINAL\\PRIMARY\\LOCALIZER."""
    rng = np.random.default_rng(seed)
    rows, columns = shape
    image = np.clip(rng.normal(0, 300, size=(1, rows, columns)), -1000, 2000).astype(np.int16)
    geometry = Geometry(
        spacing=(pixel_spacing, pixel_spacing, 1.0),
        origin=(-columns * pixel_spacing / 2, 0.0, 100.0),
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 0.0, -1.0),
    )
    return write_ct_series(directory, image, geometry=geometry, patient=patient, study=study, series=series, seed=seed)


def write_reformat(
    directory: Path,
    volume_hu: np.ndarray,
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
    patient: Patient = DEFAULT_PATIENT,
    study: Study = DEFAULT_STUDY,
    series: Series = REFORMAT_SERIES,
    every: int = 1,
) -> WrittenSeries:
    """Coronal reformat of an axial volume (written with ``geometry``): DERIVED\\SECONDARY\\MPR.

    Image ``j`` is the coronal plane ``y = j`` of the volume, top row = highest slice. The
    axial ``geometry`` must be the identity-oriented one (rows along x, columns along y).
    """
    volume = np.asarray(volume_hu)
    sx, sy, sz = geometry.spacing
    ox, oy, oz = geometry.origin
    coronal = volume[::-1, ::every, :].transpose(1, 0, 2)  # (y, z from top, x)
    top = oz + (volume.shape[0] - 1) * sz
    reformat_geometry = Geometry(
        spacing=(sx, abs(sz), sy * every),
        origin=(ox, oy, top),
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 0.0, -1.0),
    )
    # Stacking coronal planes along +y: normal of (row=x, col=-z) is +y.
    return write_ct_series(
        directory,
        coronal,
        geometry=reformat_geometry,
        patient=patient,
        study=study,
        series=series,
    )


def write_secondary_capture(
    path: Path,
    image: np.ndarray,
    *,
    patient: Patient = DEFAULT_PATIENT,
    study: Study = DEFAULT_STUDY,
    series: Series = DOSE_SCREEN_SERIES,
) -> WrittenSeries:
    """A secondary capture (screenshot, e.g. a dose screen): SOP class 1.2.840.10008.5.1.4.1.1.7.

    ``image`` is 2-D unsigned 8-bit (monochrome) or ``(rows, columns, 3)`` RGB.
    """
    from pydicom.uid import ExplicitVRLittleEndian

    pixels = np.asarray(image, dtype=np.uint8)
    the_series_uid = series_uid(patient, study, series)
    sop_uid = deterministic_uid("sc", the_series_uid)
    ds = base_dataset(
        sop_class_uid=SECONDARY_CAPTURE_IMAGE_STORAGE,
        sop_instance_uid=sop_uid,
        transfer_syntax=ExplicitVRLittleEndian,
        patient=patient,
        study=study,
        series=series,
    )
    ds.ImageType = list(series.image_type)
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    else:
        set_pixels(ds, pixels.astype(np.uint16), pixel_representation=0, bits_stored=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_and_save(ds, path, transfer_syntax=ExplicitVRLittleEndian, stored=pixels)
    return WrittenSeries(
        paths=(path,), study_uid=study_uid(patient, study), series_uid=the_series_uid, sop_instance_uids=(sop_uid,)
    )


def write_dose_report(
    path: Path,
    *,
    patient: Patient = DEFAULT_PATIENT,
    study: Study = DEFAULT_STUDY,
    series: Series = DOSE_SR_SERIES,
) -> WrittenSeries:
    """A minimal X-Ray Radiation Dose structured report (no pixel data): a non-image object."""
    from pydicom.uid import ExplicitVRLittleEndian

    the_series_uid = series_uid(patient, study, series)
    sop_uid = deterministic_uid("sr", the_series_uid)
    ds = base_dataset(
        sop_class_uid=XRAY_RADIATION_DOSE_SR_STORAGE,
        sop_instance_uid=sop_uid,
        transfer_syntax=ExplicitVRLittleEndian,
        patient=patient,
        study=study,
        series=series,
    )
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_and_save(ds, path, transfer_syntax=ExplicitVRLittleEndian)
    return WrittenSeries(
        paths=(path,), study_uid=study_uid(patient, study), series_uid=the_series_uid, sop_instance_uids=(sop_uid,)
    )
