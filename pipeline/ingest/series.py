"""Group DICOM headers into series candidates, splitting series that hold several stacks.

A series is keyed by SeriesInstanceUID. A UID shared by several patients or studies (reset by
a faulty anonymiser) is first split into one series per (PatientID, StudyInstanceUID) pair
(warning ``SERIES_SPLIT``). Copies of one image (same SOPInstanceUID) are reduced to the best
one. Archives put more than one stack under one UID: several orientations (localizer pairs),
several matrix sizes, several acquisitions of the same positions (repeated or dynamic scans),
several enhanced multi-frame files (the parts of a concatenation, which share ConcatenationUID,
are one stack). Each such stack becomes its own candidate (warning ``SERIES_SPLIT``), or, with
``geometry.split_mixed_series: false``, the whole series is rejected.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ErrorCode, IngestError, WarningCode
from pipeline.ingest.candidate import FileIssue, SeriesCandidate
from pipeline.ingest.dicom_header import DicomHeader, FrameInfo, PixelStatus
from pipeline.ingest.dicom_values import decoder_available, dicom_datetime, earliest_moment, stored_padding
from pipeline.ingest.geometry import plan_dicom_stack
from pipeline.ingest.plan import PixelFormat, SourceKind, VolumePlan
from pipeline.ingest.scan import IngestWarning
from pipeline.ingest.settings import GeometrySettings
from pipeline.privacy import short_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Stack:
    label: str
    key: str
    items: tuple[tuple[DicomHeader, FrameInfo], ...]


def build_dicom_candidates(
    headers: Sequence[DicomHeader], *, settings: GeometrySettings
) -> tuple[list[SeriesCandidate], list[FileIssue]]:
    """Group headers into series and stacks, and plan each stack's volume.

    Returns
    -------
    candidates, skipped
        One candidate per stack (selection not yet applied), and the files dropped on the
        way (DICOMDIR files, files without SeriesInstanceUID, files of a series that lack the
        pixels their siblings have).
    """
    skipped: list[FileIssue] = []
    by_series: dict[str, list[DicomHeader]] = defaultdict(list)
    for header in headers:
        if header.is_dicomdir:
            skipped.append(
                FileIssue(header.path, ErrorCode.NON_IMAGE_OBJECT, "DICOMDIR index file (the images are read directly)")
            )
        else:
            by_series[_series_key(header)].append(header)

    candidates: list[SeriesCandidate] = []
    for uid_key in sorted(by_series):
        for series_key, members, shared in _patient_study_parts(uid_key, by_series[uid_key]):
            try:
                new, dropped = _series_candidates(series_key, members, settings=settings)
            except Exception as exc:  # noqa: BLE001 - one odd series must not stop the index of an archive
                log.exception(
                    "series %s: unexpected error while grouping and planning", short_hash(series_key, length=12)
                )
                message = f"unexpected error while grouping this file's series ({type(exc).__name__}); please report it"
                skipped.extend(FileIssue(h.path, ErrorCode.INTERNAL_ERROR, message) for h in members)
                continue
            candidates.extend(dataclasses.replace(c, warnings=(*shared, *c.warnings)) if shared else c for c in new)
            skipped.extend(dropped)
    return candidates, skipped


def _patient_study_parts(
    uid_key: str, headers: list[DicomHeader]
) -> list[tuple[str, list[DicomHeader], tuple[IngestWarning, ...]]]:
    """Split the files of one series key by (PatientID, StudyInstanceUID).

    A SeriesInstanceUID shared by several patients or studies (reset or reused by a faulty
    anonymiser) must not merge their images into one volume. Each pair becomes its own series:
    its key gets a short hash of the pair (an unshared series keeps its key, hence its scan id)
    and its candidates a ``SERIES_SPLIT`` warning that names no identifier.

    Returns
    -------
    list of (series key, members sorted by path, warnings for every candidate of the part)
    """
    parts: dict[tuple[str, str], list[DicomHeader]] = defaultdict(list)
    for header in headers:
        parts[(header.patient_id, header.study_uid)].append(header)
    if len(parts) == 1:
        return [(uid_key, sorted(headers, key=lambda h: h.path), ())]
    warning = IngestWarning(
        WarningCode.SERIES_SPLIT,
        f"{len(parts)} patient/study pairs share this SeriesInstanceUID (a UID reused or reset by "
        "anonymisation): the images of each pair are a series of their own",
    )
    log.info("series %s: split into %d patient/study pairs", short_hash(uid_key, length=12), len(parts))
    return [
        (
            f"{uid_key}|patient-study:{short_hash(f'{patient}|{study}', length=12)}",
            sorted(parts[(patient, study)], key=lambda h: h.path),
            (warning,),
        )
        for patient, study in sorted(parts)
    ]


def _series_key(header: DicomHeader) -> str:
    """SeriesInstanceUID, or for files stripped of it: folder, study, series number, description."""
    if header.series_uid:
        return header.series_uid
    folder = os.path.dirname(header.path)
    return (
        f"no-series-uid|{folder}|{header.study_uid}|{header.series_number}|{header.series_description}|"
        f"{header.modality}"
    )


def _series_candidates(
    series_key: str, members: list[DicomHeader], *, settings: GeometrySettings
) -> tuple[list[SeriesCandidate], list[FileIssue]]:
    warnings: list[IngestWarning] = []
    skipped: list[FileIssue] = []
    if not members[0].series_uid:
        warnings.append(
            IngestWarning(
                WarningCode.MALFORMED_ELEMENT,
                "SeriesInstanceUID is missing: images grouped by folder, study, series number and description",
            )
        )

    unique = _without_duplicate_copies(members)
    copies = len(members) - len(unique)
    if copies:
        warnings.append(
            IngestWarning(
                WarningCode.FILES_SKIPPED, f"{copies} duplicate copies of the same images (same SOPInstanceUID) ignored"
            )
        )

    with_pixels = [h for h in unique if h.pixel_status is PixelStatus.PRESENT]
    if with_pixels and len(with_pixels) < len(unique):
        for header in unique:
            if header.pixel_status is PixelStatus.PRESENT:
                continue
            code = (
                ErrorCode.PRIVATE_PIXEL_DATA if header.pixel_status is PixelStatus.PRIVATE else ErrorCode.NO_PIXEL_DATA
            )
            skipped.append(FileIssue(header.path, code, _pixel_status_message(header.pixel_status)))
        warnings.append(
            IngestWarning(
                WarningCode.FILES_SKIPPED,
                f"{len(unique) - len(with_pixels)} files of this series hold no readable pixel data and were skipped",
            )
        )
        unique = with_pixels

    stacks, mixed_error = _split(unique, settings=settings)
    if len(stacks) > 1:
        warnings.append(
            IngestWarning(
                WarningCode.SERIES_SPLIT,
                f"series holds {len(stacks)} separate stacks ({'; '.join(s.label for s in stacks)}); "
                "each is a candidate",
            )
        )
    candidates = [
        _candidate(series_key, stack, warnings=tuple(warnings), settings=settings, forced_error=mixed_error)
        for stack in stacks
    ]
    return candidates, skipped


def _copy_rank(header: DicomHeader) -> tuple[bool, bool, bool, bool, str]:
    """Preference among copies of one image (smaller is better).

    Pixels present, then lossless (never lossy compressed, then at least not stored in a lossy
    transfer syntax: a decompressed copy of a lossy image is read without a decoder), then a
    transfer syntax an installed decoder handles, then path order.
    """
    return (
        header.pixel_status is not PixelStatus.PRESENT,
        header.lossy,
        header.lossy_encoding,
        not decoder_available(header.transfer_syntax_uid),
        header.path,
    )


def _without_duplicate_copies(members: list[DicomHeader]) -> list[DicomHeader]:
    """Keep one file per image (SOPInstanceUID and frame count): the best copy, in path order.

    Files without SOPInstanceUID are all kept.
    """
    best: dict[tuple[str, int], DicomHeader] = {}
    for header in members:
        if not header.sop_instance_uid:
            continue
        key = (header.sop_instance_uid, header.number_of_frames)
        kept = best.get(key)
        if kept is None or _copy_rank(header) < _copy_rank(kept):
            best[key] = header
    return [
        header
        for header in members
        if not header.sop_instance_uid or best[(header.sop_instance_uid, header.number_of_frames)] is header
    ]


def _pixel_status_message(status: PixelStatus) -> str:
    if status is PixelStatus.PRIVATE:
        return "the image pixels are stored in a vendor-private element (proprietary compression) that cannot be read"
    return (
        "the file has no pixel data element (an object stripped of its pixels, or a copy cut short at an "
        "element boundary)"
    )


def _normal(frame: FrameInfo) -> np.ndarray | None:
    if frame.orientation is None:
        return None
    row = np.asarray(frame.orientation[:3])
    col = np.asarray(frame.orientation[3:])
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else None


def _orientation_clusters(
    items: list[tuple[DicomHeader, FrameInfo]], *, tolerance: float
) -> list[list[tuple[DicomHeader, FrameInfo]]]:
    """Group images whose orientation cosines agree within ``tolerance`` (order of first appearance)."""
    clusters: list[tuple[tuple[float, ...] | None, list[tuple[DicomHeader, FrameInfo]]]] = []
    for item in items:
        orientation = item[1].orientation
        for reference, bucket in clusters:
            same = (reference is None and orientation is None) or (
                reference is not None
                and orientation is not None
                and max(abs(a - b) for a, b in zip(reference, orientation, strict=True)) <= tolerance
            )
            if same:
                bucket.append(item)
                break
        else:
            clusters.append((orientation, [item]))
    return [bucket for _, bucket in clusters]


def _split(
    members: list[DicomHeader], *, settings: GeometrySettings
) -> tuple[list[_Stack], tuple[ErrorCode, str] | None]:
    """Partition a series into stacks: multi-frame file or concatenation, matrix size, orientation, acquisition."""
    groups: dict[tuple[str, int | None, int | None], list[tuple[DicomHeader, FrameInfo]]] = defaultdict(list)
    for header in members:
        groups[(_source_key(header), header.rows, header.columns)].extend((header, frame) for frame in header.frames)
    n_sizes = len({(rows, columns) for _, rows, columns in groups})

    stacks: list[_Stack] = []
    n_orientations = 1
    for source, rows, columns in sorted(groups, key=str):
        items = groups[(source, rows, columns)]
        base = [_source_label(source, items)] if source != _SINGLE_FRAME_FILES else []
        base += [f"{columns}x{rows} pixels"] if n_sizes > 1 else []
        clusters = _orientation_clusters(items, tolerance=settings.orientation_tolerance)
        n_orientations = max(n_orientations, len(clusters))
        for index, bucket in enumerate(clusters):
            label = base + ([f"orientation {index + 1} of {len(clusters)}"] if len(clusters) > 1 else [])
            for acq_key, acq_label, part in _split_acquisitions(bucket, settings=settings):
                key = f"{source}|{rows}x{columns}|o{index}{acq_key}"
                stacks.append(_Stack(label=", ".join(label + acq_label), key=key, items=tuple(part)))

    if len(stacks) == 1:
        return [_Stack(label="", key="", items=stacks[0].items)], None
    if settings.split_mixed_series:
        return stacks, None
    if n_sizes > 1:
        error = (
            ErrorCode.MIXED_IMAGE_SIZES,
            f"the series mixes {n_sizes} image sizes (geometry.split_mixed_series = false)",
        )
    elif n_orientations > 1 or len({s for s, _, _ in groups}) > 1:
        error = (
            ErrorCode.MIXED_ORIENTATIONS,
            "the series mixes several slice orientations or stacks (geometry.split_mixed_series = false)",
        )
    else:
        error = (
            ErrorCode.DUPLICATE_POSITIONS,
            "the series holds several acquisitions of the same positions (geometry.split_mixed_series = false)",
        )
    everything = tuple(item for stack in stacks for item in stack.items)
    return [_Stack(label="", key="", items=everything)], error


_SINGLE_FRAME_FILES = "files"
_CONCATENATION = "concatenation:"


def _source_key(header: DicomHeader) -> str:
    """Which stack source a file belongs to.

    Single-frame files of a series form one source; a multi-frame file is a source of its own,
    except the parts of a concatenation (files sharing ConcatenationUID), which form one.
    """
    if header.number_of_frames <= 1:
        return _SINGLE_FRAME_FILES
    if header.concatenation_uid:
        return f"{_CONCATENATION}{header.concatenation_uid}"
    return f"file:{header.sop_instance_uid or header.path}"


def _source_label(source: str, items: list[tuple[DicomHeader, FrameInfo]]) -> str:
    if source.startswith(_CONCATENATION):
        n_files = len({header.path for header, _ in items})
        return f"concatenation of {n_files} multi-frame files"
    return f"multi-frame file {os.path.basename(items[0][0].path)}"


def _split_acquisitions(
    items: list[tuple[DicomHeader, FrameInfo]], *, settings: GeometrySettings
) -> list[tuple[str, list[str], list[tuple[DicomHeader, FrameInfo]]]]:
    """Split by AcquisitionNumber when positions repeat and each acquisition is a clean stack."""
    whole = [("", [], items)]
    normal = _normal(items[0][1])
    if normal is None or any(frame.position is None for _, frame in items):
        return whole
    if not _has_repeats([frame for _, frame in items], normal, settings.position_tolerance_mm):
        return whole
    by_acquisition: dict[int | None, list[tuple[DicomHeader, FrameInfo]]] = defaultdict(list)
    for item in items:
        by_acquisition[item[1].acquisition_number].append(item)
    if len(by_acquisition) < 2:
        return whole
    parts = [by_acquisition[a] for a in sorted(by_acquisition, key=lambda a: (a is None, a or 0))]
    if any(len(p) < 2 or _has_repeats([f for _, f in p], normal, settings.position_tolerance_mm) for p in parts):
        return whole
    return [
        (f"|acq:{acquisition}", [f"acquisition {acquisition}"], by_acquisition[acquisition])
        for acquisition in sorted(by_acquisition, key=lambda a: (a is None, a or 0))
    ]


def _has_repeats(frames: list[FrameInfo], normal: np.ndarray, tolerance: float) -> bool:
    along = np.sort(np.array([frame.position for frame in frames], dtype=np.float64) @ normal)
    return bool(np.any(np.diff(along) < tolerance))


def _candidate(
    series_key: str,
    stack: _Stack,
    *,
    warnings: tuple[IngestWarning, ...],
    settings: GeometrySettings,
    forced_error: tuple[ErrorCode, str] | None,
) -> SeriesCandidate:
    headers = sorted({h.path: h for h, _ in stack.items}.values(), key=lambda h: h.path)
    frames = [frame for _, frame in stack.items]
    first = headers[0]
    syntaxes = tuple(sorted({h.transfer_syntax_uid for h in headers}))
    statuses = {h.pixel_status for h in headers}

    pixel_error: tuple[ErrorCode, str] | None = None
    if PixelStatus.PRIVATE in statuses:
        pixel_error = (ErrorCode.PRIVATE_PIXEL_DATA, _pixel_status_message(PixelStatus.PRIVATE))
    elif PixelStatus.ABSENT in statuses:
        pixel_error = (ErrorCode.NO_PIXEL_DATA, _pixel_status_message(PixelStatus.ABSENT))
    else:
        unsupported = [uid for uid in syntaxes if not decoder_available(uid)]
        if unsupported:
            pixel_error = (
                ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX,
                f"no installed decoder handles transfer syntax {', '.join(unsupported)}",
            )

    plan: VolumePlan | None = None
    geometry_error = forced_error
    layouts = {(h.bits_allocated, h.bits_stored, h.pixel_representation, h.samples_per_pixel) for h in headers}
    if geometry_error is None and first.rows and first.columns:
        pixel_format = PixelFormat(
            padding_value=stored_padding(
                first.padding_value,
                pixel_representation=first.pixel_representation,
                bits_allocated=first.bits_allocated,
            ),
            padding_range_limit=stored_padding(
                first.padding_range_limit,
                pixel_representation=first.pixel_representation,
                bits_allocated=first.bits_allocated,
            ),
            transfer_syntax_uids=syntaxes,
            # 0 when the files disagree on the layout: then every file is decoded by pydicom.
            bits_allocated=(first.bits_allocated or 16) if len(layouts) == 1 else 0,
            bits_stored=first.bits_stored or first.bits_allocated or 16,
            pixel_representation=first.pixel_representation or 0,
            samples_per_pixel=first.samples_per_pixel,
        )
        try:
            plan = plan_dicom_stack(
                frames,
                rows=first.rows,
                columns=first.columns,
                pixel_format=pixel_format,
                slice_thickness=first.slice_thickness,
                spacing_between_slices=first.spacing_between_slices,
                settings=settings,
            )
        except IngestError as exc:
            geometry_error = (exc.code, exc.message)

    extra: list[IngestWarning] = []
    malformed = sorted({name for h in headers for name in h.malformed})
    if malformed:
        extra.append(
            IngestWarning(WarningCode.MALFORMED_ELEMENT, f"unreadable header elements ignored: {', '.join(malformed)}")
        )
    if any(h.lossy for h in headers):
        extra.append(IngestWarning(WarningCode.LOSSY_COMPRESSION, "pixel values went through lossy compression"))

    acquisitions = [
        dicom_datetime(h.acquisition_datetime)
        if h.acquisition_datetime
        else dicom_datetime(h.acquisition_date, h.acquisition_time)
        for h in headers
    ]
    acquisition = earliest_moment(acquisitions)
    folders = sorted({os.path.dirname(h.path) for h in headers})
    source = folders[0] if len(folders) == 1 else os.path.commonpath(folders)
    scan_id = short_hash(f"dicom|{first.study_uid}|{series_key}|{stack.key}", length=12)
    return SeriesCandidate(
        scan_id=scan_id,
        source_kind=SourceKind.DICOM,
        patient_id=first.patient_id,
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        series_part=stack.label,
        series_number=first.series_number,
        series_description=first.series_description,
        study_description=first.study_description,
        modality=first.modality,
        sop_class_uid=first.sop_class_uid,
        image_type=first.image_type,
        study_datetime=dicom_datetime(first.study_date, first.study_time),
        series_datetime=dicom_datetime(first.series_date, first.series_time),
        acquisition_datetime=acquisition,
        manufacturer=first.manufacturer,
        manufacturer_model=first.model,
        kernel=first.kernel,
        slice_thickness_mm=first.slice_thickness,
        body_part=first.body_part,
        contrast_agent=first.contrast_agent,
        transfer_syntax_uids=syntaxes,
        lossy=any(h.lossy for h in headers),
        files=tuple(h.path for h in headers),
        n_images=len(frames),
        source_path=source,
        plan=plan,
        warnings=warnings + tuple(extra),
        pixel_status=(PixelStatus.PRESENT if statuses == {PixelStatus.PRESENT} else sorted(statuses)[0]).value,
        samples_per_pixel=max(h.samples_per_pixel for h in headers),
        slice_normal=plan.normal if plan is not None else _normal_tuple(frames[0]),
        pixel_error=pixel_error,
        geometry_error=geometry_error,
    )


def _normal_tuple(frame: FrameInfo) -> tuple[float, float, float] | None:
    normal = _normal(frame)
    return None if normal is None else (float(normal[0]), float(normal[1]), float(normal[2]))
