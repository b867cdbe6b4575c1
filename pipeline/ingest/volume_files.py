"""Research volumes (NIfTI, NRRD, MetaImage) as candidates: values are taken to be HU.

The header is read without the voxels (``ImageFileReader.ReadImageInformation``). The
patient id is the file name without its suffix; the scan id is a hash of the file's path
relative to the input it was found under (stable when the folder moves), widened where two
inputs hold the same relative path (see :func:`~pipeline.ingest.discovery.find_inputs`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest.candidate import FileIssue, SeriesCandidate
from pipeline.ingest.plan import SourceKind, VolumePlan
from pipeline.ingest.settings import GeometrySettings, HUSettings
from pipeline.privacy import short_hash


def strip_volume_suffix(name: str, suffixes: list[str]) -> str:
    """File name without the longest matching volume suffix (``case1.nii.gz`` -> ``case1``)."""
    lower = name.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def volume_candidate(
    path: Path, *, key: str, suffixes: list[str], settings: GeometrySettings
) -> SeriesCandidate | FileIssue:
    """A candidate for one volume file, or the reason it cannot be read.

    Parameters
    ----------
    path
        The volume file.
    key
        Its path relative to the input it was found under, unique among the inputs (the scan
        id is a hash of it).
    suffixes
        ``index.volume_suffixes`` (to derive the patient id from the file name).
    settings
        Geometry tolerances (orthonormality of the direction matrix).
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        return FileIssue(str(path), ErrorCode.VOLUME_FILE_UNREADABLE, f"cannot read the volume header ({first[:200]})")
    dimension = reader.GetDimension()
    components = reader.GetNumberOfComponents()
    if dimension != 3 or components != 1:
        return FileIssue(
            str(path),
            ErrorCode.VOLUME_FILE_UNREADABLE,
            f"a {dimension}-D image with {components} component(s) per voxel; "
            "a CT volume is 3-D with one value per voxel",
        )
    size = tuple(int(v) for v in reader.GetSize())
    spacing = tuple(float(v) for v in reader.GetSpacing())
    origin = tuple(float(v) for v in reader.GetOrigin())
    direction = tuple(float(v) for v in reader.GetDirection())
    matrix = np.asarray(direction).reshape(3, 3)
    normal = tuple(float(v) for v in matrix[:, 2])
    pixel_type = sitk.GetPixelIDValueAsString(reader.GetPixelID())

    geometry_error: tuple[ErrorCode, str] | None = None
    if float(np.abs(matrix.T @ matrix - np.eye(3)).max()) > settings.orthonormal_tolerance:
        geometry_error = (ErrorCode.NON_ORTHONORMAL_DIRECTION, "the volume's direction matrix is not orthonormal")
    elif "unsigned" in pixel_type:
        geometry_error = (
            ErrorCode.NOT_CT,
            f"voxel type '{pixel_type}' cannot hold Hounsfield units (air is -1000): a mask or label map, not CT",
        )
    plan = VolumePlan(
        source_kind=SourceKind.VOLUME_FILE,
        size=size,  # type: ignore[arg-type]
        spacing=spacing,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        normal=normal,  # type: ignore[arg-type]
        volume_path=str(path),
    )
    name = path.name
    return SeriesCandidate(
        scan_id=short_hash(f"volume|{key}", length=12),
        source_kind=SourceKind.VOLUME_FILE,
        patient_id=strip_volume_suffix(name, suffixes),
        study_uid="",
        series_uid="",
        series_part="",
        series_number=None,
        series_description=name,
        study_description="",
        modality="CT",
        sop_class_uid="",
        image_type=None,
        study_datetime=None,
        series_datetime=None,
        acquisition_datetime=None,
        manufacturer="",
        manufacturer_model="",
        kernel="",
        slice_thickness_mm=None,
        body_part="",
        contrast_agent="",
        transfer_syntax_uids=(),
        lossy=False,
        files=(str(path),),
        n_images=size[2],
        source_path=str(path),
        plan=plan,
        slice_normal=normal,  # type: ignore[arg-type]
        geometry_error=geometry_error,
    )


def load_volume_file(candidate: SeriesCandidate, *, hu: HUSettings) -> tuple[np.ndarray, int]:
    """Voxels of a volume-file candidate as int16 HU ``(z, y, x)``, and how many were mapped to padding.

    Raises
    ------
    IngestError
        ``VOLUME_FILE_UNREADABLE`` when the file cannot be read or no longer matches its header,
        ``NOT_CT`` when the volume holds no air (a mask, label map or unscaled values).
    """
    import SimpleITK as sitk

    assert candidate.plan is not None
    path = candidate.plan.volume_path
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as exc:
        raise IngestError(
            ErrorCode.VOLUME_FILE_UNREADABLE, f"{path}: cannot read the volume ({str(exc)[-200:]})"
        ) from None
    if tuple(image.GetSize()) != candidate.plan.size:
        raise IngestError(ErrorCode.VOLUME_FILE_UNREADABLE, f"{path}: the file changed since it was indexed")
    values = sitk.GetArrayViewFromImage(image)
    lowest = float(values.min()) if values.size else 0.0
    if lowest > hu.volume_file_air_check_hu:
        raise IngestError(
            ErrorCode.NOT_CT,
            f"{path}: the lowest value is {lowest:g}, above hu.volume_file_air_check_hu = "
            f"{hu.volume_file_air_check_hu}: no air, so not CT in Hounsfield units (a mask, label map or raw values?)",
        )
    from pipeline.ingest.hu import hu_from_volume

    return hu_from_volume(np.asarray(values), hu=hu)
