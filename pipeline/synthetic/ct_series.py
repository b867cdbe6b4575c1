"""Write a numpy HU volume as a DICOM CT series (classic single-frame or enhanced multi-frame)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pipeline.synthetic.dataset import (
    base_dataset,
    encode_and_save,
    frame_of_reference_uid,
    series_uid,
    set_pixels,
    study_uid,
    tm,
    to_stored,
)
from pipeline.synthetic.spec import (
    DEFAULT_ENCODING,
    DEFAULT_GEOMETRY,
    DEFAULT_PATIENT,
    DEFAULT_QUIRKS,
    DEFAULT_SERIES,
    DEFAULT_STUDY,
    FileNaming,
    Geometry,
    Patient,
    PixelEncoding,
    Quirks,
    Series,
    Study,
    deterministic_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"


@dataclass(frozen=True)
class WrittenSeries:
    """What a writer wrote."""

    paths: tuple[Path, ...]
    study_uid: str
    series_uid: str
    sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True)
class SliceFrame:
    """Geometry of one written slice."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]


def slice_frames(n_slices: int, geometry: Geometry) -> list[SliceFrame]:
    """Position and orientation of each slice of a volume written with ``geometry``."""
    row = np.asarray(geometry.row_direction, dtype=np.float64)
    col = np.asarray(geometry.column_direction, dtype=np.float64)
    normal = np.cross(row, col)
    tilt = math.radians(geometry.tilt_deg)
    tilted_col = col * math.cos(tilt) - normal * math.sin(tilt)
    origin = np.asarray(geometry.origin, dtype=np.float64)
    orientation = tuple(round(float(v), 10) for v in (*row, *tilted_col))
    return [
        SliceFrame(
            position=tuple(round(float(v), 6) for v in origin + k * geometry.spacing[2] * normal),  # type: ignore[arg-type]
            orientation=orientation,  # type: ignore[arg-type]
        )
        for k in range(n_slices)
    ]


def _per_slice(value: float | Sequence[float], n: int, name: str) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values for {n} slices")
    return values


def _check_volume(volume_hu: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume_hu)
    if volume.ndim != 3:
        raise ValueError(f"the HU volume must be 3-D (slices, rows, columns), got shape {volume.shape}")
    return volume


def _ct_image_dataset(
    *,
    sop_uid: str,
    transfer_syntax: str,
    patient: Patient,
    study: Study,
    series: Series,
    geometry: Geometry,
    frame: SliceFrame,
    instance: int,
    acquisition: int,
) -> Dataset:
    ds = base_dataset(
        sop_class_uid=CT_IMAGE_STORAGE,
        sop_instance_uid=sop_uid,
        transfer_syntax=transfer_syntax,
        patient=patient,
        study=study,
        series=series,
    )
    ds.ImageType = list(series.image_type)
    ds.AcquisitionDate = ds.StudyDate
    ds.AcquisitionTime = tm(series.acquisition_time)
    ds.FrameOfReferenceUID = frame_of_reference_uid(patient, study, series)
    ds.PositionReferenceIndicator = ""
    ds.AcquisitionNumber = acquisition
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}".rstrip("0").rstrip(".") for v in frame.position]
    ds.ImageOrientationPatient = [f"{v:.8f}".rstrip("0").rstrip(".") or "0" for v in frame.orientation]
    ds.PixelSpacing = [geometry.spacing[1], geometry.spacing[0]]
    ds.SliceThickness = series.slice_thickness if series.slice_thickness is not None else abs(geometry.spacing[2])
    ds.KVP = 120
    ds.ConvolutionKernel = series.kernel
    ds.GantryDetectorTilt = geometry.tilt_deg
    ds.RescaleType = "HU"
    if series.contrast_agent:
        ds.ContrastBolusAgent = series.contrast_agent
    return ds


def write_ct_series(
    directory: Path,
    volume_hu: np.ndarray,
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
    patient: Patient = DEFAULT_PATIENT,
    study: Study = DEFAULT_STUDY,
    series: Series = DEFAULT_SERIES,
    encoding: PixelEncoding = DEFAULT_ENCODING,
    quirks: Quirks = DEFAULT_QUIRKS,
    padding_mask: np.ndarray | None = None,
    seed: int = 0,
) -> WrittenSeries:
    """Write ``volume_hu`` (slices, rows, columns) as one classic CT series, one file per slice.

    Parameters
    ----------
    directory
        Created if needed; files are written atomically.
    volume_hu
        HU values; voxel ``[k, j, i]`` is placed as :class:`~pipeline.synthetic.spec.Geometry` says.
    geometry, patient, study, series
        Where and what (UIDs are derived deterministically when left empty).
    encoding
        Rescale slope/intercept (per slice allowed), stored-value format, padding, transfer
        syntax (compressed syntaxes use pydicom's encoders: RLE, JPEG-LS, JPEG 2000 lossless).
    quirks
        File naming, instance numbering, missing and duplicated slices, acquisition numbers.
    padding_mask
        Voxels written as ``encoding.padding_value`` (same shape as the volume).
    seed
        Seeds the shuffled file names (fixed seed: same files every time).

    Returns
    -------
    WrittenSeries
        Paths (in slice order), UIDs.
    """
    volume = _check_volume(volume_hu)
    n = volume.shape[0]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    slopes = _per_slice(encoding.slopes, n, "slopes")
    intercepts = _per_slice(encoding.intercepts, n, "intercepts")
    acquisitions = list(quirks.acquisition_numbers) if quirks.acquisition_numbers is not None else [1] * n
    if len(acquisitions) != n:
        raise ValueError(f"acquisition_numbers has {len(acquisitions)} values for {n} slices")
    if padding_mask is not None and encoding.padding_value is None:
        raise ValueError("a padding_mask needs encoding.padding_value")
    frames = slice_frames(n, geometry)
    the_series_uid = series_uid(patient, study, series)

    jobs: list[tuple[int, int]] = []  # (slice index, copy number)
    for k in range(n):
        if k in quirks.drop_slices:
            continue
        jobs.append((k, 0))
        if k in quirks.duplicate_slices:
            jobs.append((k, 1))
    order = list(range(len(jobs)))
    if quirks.naming is FileNaming.SHUFFLED:
        np.random.default_rng(seed).shuffle(order)

    paths: list[Path] = []
    uids: list[str] = []
    for job_index, (k, copy) in enumerate(jobs):
        sop_uid = deterministic_uid("image", the_series_uid, k, copy, quirks.uid_salt)
        instance = (len(jobs) - job_index) if quirks.reverse_instance_numbers else job_index + 1
        ds = _ct_image_dataset(
            sop_uid=sop_uid,
            transfer_syntax=encoding.transfer_syntax,
            patient=patient,
            study=study,
            series=series,
            geometry=geometry,
            frame=frames[k],
            instance=instance,
            acquisition=acquisitions[k],
        )
        ds.SliceLocation = frames[k].position[2]
        ds.RescaleSlope = slopes[k]
        ds.RescaleIntercept = intercepts[k]
        stored = to_stored(
            volume[k],
            slope=slopes[k],
            intercept=intercepts[k],
            pixel_representation=encoding.pixel_representation,
            bits_stored=encoding.bits_stored,
        )
        if encoding.padding_value is not None:
            # The VR follows the sign of the value as written, not PixelRepresentation: archives
            # hold e.g. US 63536 for -2000 in signed pixels (LIDC), which this reproduces.
            ds.add_new(0x00280120, "US" if encoding.padding_value >= 0 else "SS", encoding.padding_value)
            if encoding.padding_range_limit is not None:
                vr = "US" if encoding.padding_range_limit >= 0 else "SS"
                ds.add_new(0x00280121, vr, encoding.padding_range_limit)
            if padding_mask is not None:
                stored[padding_mask[k]] = encoding.padding_value
        for keyword, value in quirks.extra_elements.items():
            setattr(ds, keyword, value)
        set_pixels(ds, stored, pixel_representation=encoding.pixel_representation, bits_stored=encoding.bits_stored)
        if quirks.naming is FileNaming.UID:
            name = f"{sop_uid}{quirks.suffix}"
        else:
            name = f"IM{order[job_index] + 1:05d}{quirks.suffix}"
        paths.append(encode_and_save(ds, directory / name, transfer_syntax=encoding.transfer_syntax, stored=stored))
        uids.append(sop_uid)
    return WrittenSeries(
        paths=tuple(paths),
        study_uid=study_uid(patient, study),
        series_uid=the_series_uid,
        sop_instance_uids=tuple(uids),
    )


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def write_enhanced_ct(
    path: Path,
    volume_hu: np.ndarray,
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
    patient: Patient = DEFAULT_PATIENT,
    study: Study = DEFAULT_STUDY,
    series: Series = DEFAULT_SERIES,
    encoding: PixelEncoding = DEFAULT_ENCODING,
    frame_order: Sequence[int] | None = None,
) -> WrittenSeries:
    """Write ``volume_hu`` as one Enhanced CT Image (multi-frame) file.

    Geometry goes into the functional groups: PixelMeasures, PlaneOrientation and CT Image
    Frame Type are shared; PlanePosition and FrameContent are per frame; PixelValueTransformation
    is shared when every slice has the same slope/intercept, per frame otherwise.

    Parameters
    ----------
    frame_order
        Which slice each frame holds (default: slice order); frames need not be sorted.
    """
    volume = _check_volume(volume_hu)
    n = volume.shape[0]
    order = list(frame_order) if frame_order is not None else list(range(n))
    if sorted(order) != list(range(n)):
        raise ValueError("frame_order must be a permutation of the slice indices")
    slopes = _per_slice(encoding.slopes, n, "slopes")
    intercepts = _per_slice(encoding.intercepts, n, "intercepts")
    frames = slice_frames(n, geometry)
    the_series_uid = series_uid(patient, study, series)
    sop_uid = deterministic_uid("enhanced", the_series_uid)
    ds = base_dataset(
        sop_class_uid=ENHANCED_CT_IMAGE_STORAGE,
        sop_instance_uid=sop_uid,
        transfer_syntax=encoding.transfer_syntax,
        patient=patient,
        study=study,
        series=series,
    )
    ds.ImageType = list(series.image_type)
    ds.FrameOfReferenceUID = frame_of_reference_uid(patient, study, series)
    ds.PositionReferenceIndicator = ""
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = ds.StudyDate + tm(series.acquisition_time)
    ds.NumberOfFrames = n
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"

    uniform = len(set(slopes)) == 1 and len(set(intercepts)) == 1
    shared = _item(
        PixelMeasuresSequence=DicomSequence(
            [
                _item(
                    PixelSpacing=[geometry.spacing[1], geometry.spacing[0]],
                    SliceThickness=series.slice_thickness
                    if series.slice_thickness is not None
                    else abs(geometry.spacing[2]),
                )
            ]
        ),
        PlaneOrientationSequence=DicomSequence([_item(ImageOrientationPatient=list(frames[0].orientation))]),
        CTImageFrameTypeSequence=DicomSequence(
            [_item(FrameType=list(series.image_type[:4]) + ["NONE"] * max(0, 4 - len(series.image_type)))]
        ),
        CTReconstructionSequence=DicomSequence([_item(ConvolutionKernel=series.kernel)]),
    )
    if uniform:
        shared.PixelValueTransformationSequence = DicomSequence(
            [_item(RescaleSlope=slopes[0], RescaleIntercept=intercepts[0], RescaleType="HU")]
        )
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    stored_frames = []
    for k in order:
        item = _item(
            PlanePositionSequence=DicomSequence([_item(ImagePositionPatient=list(frames[k].position))]),
            FrameContentSequence=DicomSequence(
                [
                    _item(
                        StackID="1",
                        InStackPositionNumber=k + 1,
                        DimensionIndexValues=[1, k + 1],
                        FrameAcquisitionNumber=1,
                    )
                ]
            ),
        )
        if not uniform:
            item.PixelValueTransformationSequence = DicomSequence(
                [_item(RescaleSlope=slopes[k], RescaleIntercept=intercepts[k], RescaleType="HU")]
            )
        per_frame.append(item)
        stored_frames.append(
            to_stored(
                volume[k],
                slope=slopes[k],
                intercept=intercepts[k],
                pixel_representation=encoding.pixel_representation,
                bits_stored=encoding.bits_stored,
            )
        )
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    stored = np.stack(stored_frames)
    set_pixels(ds, stored, pixel_representation=encoding.pixel_representation, bits_stored=encoding.bits_stored)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_and_save(ds, path, transfer_syntax=encoding.transfer_syntax, stored=stored)
    return WrittenSeries(
        paths=(path,), study_uid=study_uid(patient, study), series_uid=the_series_uid, sop_instance_uids=(sop_uid,)
    )
