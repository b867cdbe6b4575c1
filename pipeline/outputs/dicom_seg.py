"""DICOM SEG output with highdicom: one BINARY segment per structure, referencing the source CT.

Segments (numbered in this order):

1. Right lung (SCT 3341006), category Anatomical Structure;
2. Left lung (SCT 44029006), category Anatomical Structure;
3. Ground glass opacity (SCT 1217294009), category Morphologically Abnormal Structure, in the lung;
4. Lung consolidation (SCT 95436008), category Morphologically Abnormal Structure, in the lung.

The lung segments include their lesions (as the lung masks do); lesion segments overlap them.
The mask is passed to highdicom as a :class:`highdicom.Volume` carrying the CT grid's exact
geometry, so frames are matched to the source slices by position, and a volume that was
resampled during ingestion (gantry tilt, missing slices) is still placed correctly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.errors import ErrorCode, LunglesionError
from pipeline.io.atomic import atomic_path
from segmentation.result import LesionLabel, LungLabel, LungSegmentation

log = logging.getLogger(__name__)

#: (label, SCT code, meaning, category) of each segment, in segment-number order.
SEGMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("Right lung", "3341006", "Right lung", "anatomy"),
    ("Left lung", "44029006", "Left lung", "anatomy"),
    ("Ground-glass opacity", "1217294009", "Ground glass opacity", "abnormal"),
    ("Consolidation", "95436008", "Lung consolidation", "abnormal"),
)


def segment_masks(segmentation: LungSegmentation) -> np.ndarray:
    """Stack the four binary segments as ``(z, y, x, 4)`` uint8, in :data:`SEGMENTS` order."""
    lungs = sitk.GetArrayViewFromImage(segmentation.lungs)
    lesions = sitk.GetArrayViewFromImage(segmentation.lesions)
    return np.stack(
        [
            lungs == LungLabel.RIGHT_LUNG,
            lungs == LungLabel.LEFT_LUNG,
            lesions == LesionLabel.GGO,
            lesions == LesionLabel.CONSOLIDATION,
        ],
        axis=-1,
    ).astype(np.uint8)


def image_affine(image: sitk.Image) -> np.ndarray:
    """4x4 affine from (slice, row, column) indices to LPS millimetres, as highdicom expects."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    sx, sy, sz = image.GetSpacing()
    affine = np.eye(4)
    affine[:3, 0] = direction[:, 2] * sz
    affine[:3, 1] = direction[:, 1] * sy
    affine[:3, 2] = direction[:, 0] * sx
    affine[:3, 3] = image.GetOrigin()
    return affine


def _segment_descriptions(*, algorithm_name: str, algorithm_version: str) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code
    from pydicom.uid import generate_uid

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=algorithm_version,
        family=codes.cid7162.ArtificialIntelligence,
    )
    categories = {
        "anatomy": codes.SCT.AnatomicalStructure,
        "abnormal": codes.SCT.MorphologicallyAbnormalStructure,
    }
    descriptions = []
    for number, (label, value, meaning, category) in enumerate(SEGMENTS, start=1):
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=label,
                segmented_property_category=categories[category],
                segmented_property_type=Code(value, "SCT", meaning),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                anatomic_regions=[codes.SCT.Lung] if category == "abnormal" else None,
                tracking_id=f"lunglesion-{value}",
                tracking_uid=generate_uid(entropy_srcs=["lunglesion-segment", value]),
            )
        )
    return descriptions


def write_dicom_seg(
    segmentation: LungSegmentation,
    *,
    source_files: Sequence[Path],
    destination: Path,
    software_version: str,
    series_number: int = 9901,
    patient_id: str | None = None,
) -> Path:
    """Write ``segmentation`` as a BINARY DICOM SEG that references ``source_files``.

    Parameters
    ----------
    segmentation
        Lung and lesion labels on the CT grid.
    source_files
        The DICOM files of the CT series the volume was built from (headers are read,
        pixels are not).
    destination
        Output file; written atomically.
    software_version
        Recorded as SoftwareVersions.
    series_number
        SeriesNumber of the new SEG series.
    patient_id
        When given (pseudonymised runs), replaces PatientID and PatientName copied from the
        source, and the other identifying patient/study attributes are emptied or removed.

    Returns
    -------
    Path
        ``destination``.
    """
    import warnings

    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    if not source_files:
        raise ValueError("a DICOM SEG needs the source DICOM files; this scan came from a volume file")
    sources = [pydicom.dcmread(str(path), stop_before_pixels=True) for path in source_files]
    sources.sort(key=lambda ds: str(ds.SOPInstanceUID))
    for source in sources:
        _blank_invalid_dates(source)
    volume = hd.Volume(
        array=segment_masks(segmentation),
        affine=image_affine(segmentation.lungs),
        coordinate_system="PATIENT",
        frame_of_reference_uid=str(sources[0].FrameOfReferenceUID),
        channels={"SegmentNumber": list(range(1, len(SEGMENTS) + 1))},
    )
    # Deterministic UIDs: the same source images, model and masks always give the same SEG
    # identity; different masks (another configuration) or another stack of the same source
    # series give another one, as DICOM requires of different content.
    content = hashlib.sha256()
    for image in (segmentation.lungs, segmentation.lesions):
        content.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(image)).data)
    entropy = [
        str(sources[0].SeriesInstanceUID),
        *(str(ds.SOPInstanceUID) for ds in sources),
        segmentation.model_id,
        segmentation.model_sha256,
        content.hexdigest(),
    ]
    with warnings.catch_warnings():
        # highdicom warns about single-component PatientName values copied from the source.
        warnings.filterwarnings("ignore", category=UserWarning, module="highdicom")
        try:
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=volume,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=_segment_descriptions(
                    algorithm_name="lunglesion", algorithm_version=segmentation.model_id
                ),
                series_instance_uid=generate_uid(entropy_srcs=[*entropy, "series"]),
                series_number=series_number,
                sop_instance_uid=generate_uid(entropy_srcs=[*entropy, "instance"]),
                instance_number=1,
                manufacturer="lunglesion",
                manufacturer_model_name="lunglesion",
                software_versions=software_version,
                device_serial_number="0",
                series_description="Lung and lesion segmentation (lunglesion)",
                content_label="LUNGLESION",
                content_description="Right/left lung, ground-glass opacity, consolidation",
                omit_empty_frames=True,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            # The message may quote a header value (a birth date, a name): the log, with --log-phi only.
            log.warning("DICOM SEG not built: %s", type(exc).__name__, extra={"phi": {"detail": str(exc)}})
            raise LunglesionError(
                ErrorCode.OUTPUT_WRITE_FAILED,
                f"the DICOM SEG could not be built from the source headers ({type(exc).__name__} in highdicom; "
                "the detail is in the log with --log-phi)",
            ) from exc
    if patient_id is not None:
        _replace_identity(seg, patient_id)
    with atomic_path(Path(destination)) as tmp:
        seg.save_as(str(tmp))
    return Path(destination)


def _blank_invalid_dates(dataset) -> None:  # noqa: ANN001 - a pydicom Dataset
    """Empty top-level DA/TM/DT values that are not valid DICOM (e.g. ``1961-07-14``).

    highdicom copies the patient and study attributes of the source into the SEG and refuses
    values that do not parse; an empty value is allowed for these Type 2 attributes. Only the
    in-memory copy read for the SEG is changed.
    """
    from pydicom.valuerep import DA, DT, TM

    parsers = {"DA": DA, "TM": TM, "DT": DT}
    for element in dataset:
        parser = parsers.get(element.VR)
        if parser is None or element.value in (None, ""):
            continue
        values = element.value if element.VM > 1 else [element.value]
        try:
            for value in values:
                parser(value)
        except (ValueError, TypeError, OverflowError):
            element.value = ""


#: Type 2 attributes that must stay present: emptied when pseudonymising.
_EMPTIED = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID")
#: Optional identifying attributes: removed when pseudonymising.
_REMOVED = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthTime",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MedicalRecordLocator",
    "IssuerOfPatientID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "PhysiciansOfRecord",
    "PerformingPhysicianName",
    "OperatorsName",
    "PatientAge",
    "PatientWeight",
    "PatientSize",
)


def _replace_identity(dataset, patient_id: str) -> None:  # noqa: ANN001 - a pydicom Dataset
    """Put the pseudonym in place of the patient's identity in a SEG dataset."""
    dataset.PatientID = patient_id
    dataset.PatientName = patient_id
    for keyword in _EMPTIED:
        if keyword in dataset:
            setattr(dataset, keyword, "")
    for keyword in _REMOVED:
        if keyword in dataset:
            delattr(dataset, keyword)
