"""Phase 2 of ingestion: build the HU volume of one planned candidate.

:func:`load_scan` follows the candidate's :class:`~pipeline.ingest.plan.VolumePlan` exactly:
it decodes the slices (a few threads), applies each slice's RescaleSlope/Intercept, maps
padding and out-of-field values to air, fills planned gaps, undoes planned gantry tilt, and
returns an int16 SimpleITK image with the plan's LPS geometry.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest.candidate import SeriesCandidate
from pipeline.ingest.hu import stored_to_hu
from pipeline.ingest.pixels import read_native_pixels, read_stored_pixels
from pipeline.ingest.plan import SourceKind, VolumePlan
from pipeline.ingest.resample import correct_tilt, fill_gaps
from pipeline.ingest.scan import Scan
from pipeline.ingest.settings import HUSettings
from pipeline.ingest.volume_files import load_volume_file

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)


def load_scan(candidate: SeriesCandidate, *, settings: Settings) -> Scan:
    """Read the pixels of one candidate and build its volume in HU.

    Parameters
    ----------
    candidate
        A candidate from :func:`~pipeline.ingest.index.index_inputs` (normally a selected one;
        any candidate with a plan and readable pixels can be loaded).
    settings
        The run's settings (sections ``hu`` and ``index.pixel_workers``).

    Returns
    -------
    Scan
        int16 HU image with the plan's size, spacing, origin and direction, and its metadata.

    Raises
    ------
    IngestError
        With the candidate's own pixel or geometry code when it cannot be loaded at all, or a
        file code (``UNREADABLE_FILE``, ``TRUNCATED_FILE``, ``DECODE_FAILED``,
        ``UNSUPPORTED_TRANSFER_SYNTAX``, ...) when a file fails now.
    """
    import SimpleITK as sitk

    start = time.perf_counter()
    if candidate.pixel_error is not None:
        raise IngestError(*candidate.pixel_error)
    plan = candidate.plan
    if plan is None:
        if candidate.geometry_error is not None:
            raise IngestError(*candidate.geometry_error)
        raise IngestError(ErrorCode.MISSING_GEOMETRY, "the series has no planned volume (no image geometry)")

    if plan.source_kind is SourceKind.VOLUME_FILE:
        if candidate.geometry_error is not None:
            raise IngestError(*candidate.geometry_error)
        volume, mapped = load_volume_file(candidate, hu=settings.hu)
    else:
        volume, mapped = _dicom_volume(plan, hu=settings.hu, workers=settings.index.pixel_workers)

    expected = (plan.size[2], plan.size[1], plan.size[0])
    if volume.shape != expected:
        raise IngestError(
            ErrorCode.INTERNAL_ERROR, f"built volume has shape {volume.shape}, the plan says {expected} (z, y, x)"
        )
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(plan.spacing)
    image.SetOrigin(plan.origin)
    image.SetDirection(plan.direction)
    meta = candidate.metadata(size=plan.size, spacing=plan.spacing)
    elapsed = time.perf_counter() - start
    log.info(
        "scan %s: loaded %d x %d x %d voxels of %.3g x %.3g x %.3g mm from %d files in %.2f s%s",
        candidate.scan_id,
        *plan.size,
        *plan.spacing,
        candidate.n_files,
        elapsed,
        f" ({', '.join(w.code.value for w in meta.warnings)})" if meta.warnings else "",
        extra={"phi": {"patient": candidate.patient_id}},
    )
    return Scan(image=image, meta=meta, extra={"padding_voxels": str(mapped)})


def _dicom_volume(plan: VolumePlan, *, hu: HUSettings, workers: int) -> tuple[np.ndarray, int]:
    """Decode every source image of the plan into an int16 HU stack, then apply the planned repairs."""
    assert plan.pixel_format is not None
    stack = np.empty((len(plan.slices), plan.rows, plan.columns), dtype=np.int16)
    positions: dict[str, list[int]] = defaultdict(list)
    for index, source in enumerate(plan.slices):
        positions[source.path].append(index)
    pixel_format = plan.pixel_format

    def convert(path: str) -> int:
        first = plan.slices[positions[path][0]]
        frames = read_native_pixels(path, source=first, rows=plan.rows, columns=plan.columns, layout=pixel_format)
        if frames is None:
            frames = read_stored_pixels(path, rows=plan.rows, columns=plan.columns)
        mapped = 0
        for index in positions[path]:
            source = plan.slices[index]
            frame = source.frame or 0
            if frame >= frames.shape[0]:
                raise IngestError(ErrorCode.DECODE_FAILED, f"{path}: frame {frame + 1} is missing from the pixel data")
            mapped += stored_to_hu(
                frames[frame],
                slope=source.slope,
                intercept=source.intercept,
                padding_value=pixel_format.padding_value,
                padding_range_limit=pixel_format.padding_range_limit,
                hu=hu,
                out=stack[index],
            )
        return mapped

    paths = list(positions)
    if workers > 1 and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lunglesion-pixels") as pool:
            mapped = sum(pool.map(convert, paths))
    else:
        mapped = sum(convert(path) for path in paths)

    if plan.interpolation:
        stack = fill_gaps(stack, plan.interpolation)
    if plan.tilt_deg:
        stack = correct_tilt(stack, plan, padding_hu=hu.padding_hu)
    return stack, mapped
