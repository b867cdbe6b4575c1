"""Validate the geometry of a DICOM stack from its headers and plan the output grid.

The slices are sorted by the projection of ImagePositionPatient on the slice normal (never
by InstanceNumber or file name). The steps between them decide whether the stack is regular,
has gaps that may be filled by interpolation, or must be rejected; the direction in which the
positions advance, compared with the slice normal, reveals gantry tilt. Everything here works
on headers only and ends in a :class:`~pipeline.ingest.plan.VolumePlan` or an
:class:`~pipeline.errors.IngestError` with a geometry code.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from pipeline.errors import ErrorCode, IngestError, WarningCode
from pipeline.ingest.dicom_header import FrameInfo
from pipeline.ingest.plan import Interpolation, PixelFormat, SliceSource, SourceKind, VolumePlan
from pipeline.ingest.scan import IngestWarning
from pipeline.ingest.settings import GeometrySettings, RepairPolicy


def slice_axes(orientation: Sequence[float], *, tolerance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and normal unit vectors of an ImageOrientationPatient value.

    Raises
    ------
    IngestError
        ``NON_ORTHONORMAL_DIRECTION`` when the two vectors are not unit length or not
        perpendicular within ``tolerance``.
    """
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:6], dtype=np.float64)
    row_norm, col_norm = float(np.linalg.norm(row)), float(np.linalg.norm(col))
    dot = float(row @ col)
    if abs(1 - row_norm) > tolerance or abs(1 - col_norm) > tolerance or abs(dot) > tolerance:
        raise IngestError(
            ErrorCode.NON_ORTHONORMAL_DIRECTION,
            f"ImageOrientationPatient {tuple(round(v, 6) for v in orientation)} is not orthonormal "
            f"(|row| = {row_norm:.6f}, |column| = {col_norm:.6f}, row.column = {dot:.6f}; "
            f"tolerance geometry.orthonormal_tolerance = {tolerance})",
        )
    row = row / row_norm
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _itk_direction(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, ...]:
    matrix = np.column_stack([x, y, z])
    return tuple(float(v) for v in matrix.ravel())


def _describe_steps(steps: np.ndarray) -> str:
    counts = Counter(round(float(s), 3) for s in steps)
    parts = [f"{step:g} mm x{count}" for step, count in sorted(counts.items())]
    return ", ".join(parts)


def plan_dicom_stack(
    frames: Sequence[FrameInfo],
    *,
    rows: int,
    columns: int,
    pixel_format: PixelFormat,
    slice_thickness: float | None,
    spacing_between_slices: float | None,
    settings: GeometrySettings,
) -> VolumePlan:
    """Sort, validate and plan one stack of same-size, same-orientation images.

    Parameters
    ----------
    frames
        The images of the stack, in any order (shuffled files, reversed series, ...).
    rows, columns
        Image matrix of every frame.
    pixel_format
        Padding and transfer syntaxes, passed through to the plan.
    slice_thickness, spacing_between_slices
        Header values, used only for the spacing of a single-image stack.
    settings
        Geometry tolerances and repair policies.

    Raises
    ------
    IngestError
        ``MISSING_GEOMETRY``, ``NON_ORTHONORMAL_DIRECTION``, ``INCONSISTENT_PIXEL_SPACING``,
        ``DUPLICATE_POSITIONS``, ``GANTRY_TILT``, ``SLICE_SPACING_INCONSISTENT``.
    """
    missing = [f for f in frames if f.position is None or f.orientation is None or f.pixel_spacing is None]
    if missing:
        what = sorted(
            {
                name
                for f in missing
                for name, value in (
                    ("ImagePositionPatient", f.position),
                    ("ImageOrientationPatient", f.orientation),
                    ("PixelSpacing", f.pixel_spacing),
                )
                if value is None
            }
        )
        raise IngestError(
            ErrorCode.MISSING_GEOMETRY,
            f"{len(missing)} of {len(frames)} images lack {', '.join(what)}: their place in space is unknown",
        )
    row, col, normal = slice_axes(frames[0].orientation, tolerance=settings.orthonormal_tolerance)  # type: ignore[arg-type]

    spacings = np.array([f.pixel_spacing for f in frames], dtype=np.float64)
    if np.any(spacings <= 0):
        raise IngestError(ErrorCode.MISSING_GEOMETRY, "PixelSpacing is zero or negative")
    spread = spacings.max(axis=0) - spacings.min(axis=0)
    if float(spread.max()) > settings.pixel_spacing_tolerance_mm:
        raise IngestError(
            ErrorCode.INCONSISTENT_PIXEL_SPACING,
            f"pixel spacing varies between images by up to {float(spread.max()):.4f} mm "
            f"(tolerance geometry.pixel_spacing_tolerance_mm = {settings.pixel_spacing_tolerance_mm})",
        )
    row_spacing, col_spacing = (float(v) for v in spacings[0])

    positions = np.array([f.position for f in frames], dtype=np.float64)
    along = positions @ normal
    order = sorted(range(len(frames)), key=lambda i: (along[i], frames[i].instance_number or 0, frames[i].path))
    frames = [frames[i] for i in order]
    positions = positions[order]
    along = along[order]
    sources = tuple(
        SliceSource(
            path=f.path,
            frame=f.frame,
            slope=f.slope,
            intercept=f.intercept,
            pixel_offset=f.pixel_offset,
            pixel_length=f.pixel_length,
        )
        for f in frames
    )
    common = {
        "source_kind": SourceKind.DICOM,
        "normal": tuple(float(v) for v in normal),
        "slices": sources,
        "rows": rows,
        "columns": columns,
        "pixel_format": pixel_format,
    }

    if len(frames) == 1:
        step = abs(spacing_between_slices or 0.0) or abs(slice_thickness or 0.0) or 1.0
        return VolumePlan(
            size=(columns, rows, 1),
            spacing=(col_spacing, row_spacing, step),
            origin=tuple(float(v) for v in positions[0]),  # type: ignore[arg-type]
            direction=_itk_direction(row, col, normal),  # type: ignore[arg-type]
            **common,
        )

    repeats = np.diff(along) < settings.position_tolerance_mm
    if np.any(repeats):
        n_positions = len(frames) - int(np.count_nonzero(repeats))
        raise IngestError(
            ErrorCode.DUPLICATE_POSITIONS,
            f"{len(frames)} images share {n_positions} distinct positions (e.g. two images at "
            f"{float(along[int(np.argmax(repeats))]):g} mm along the slice normal): several acquisitions "
            "or phases mixed in one series",
        )

    travel = positions[-1] - positions[0]
    stack_dir = travel / np.linalg.norm(travel)
    tilt = math.degrees(math.acos(min(1.0, abs(float(stack_dir @ normal)))))
    tilted = tilt > settings.tilt_tolerance_deg
    if tilted and (settings.on_gantry_tilt is RepairPolicy.REJECT or tilt > settings.max_tilt_deg):
        limit = (
            "geometry.on_gantry_tilt = reject"
            if settings.on_gantry_tilt is RepairPolicy.REJECT
            else f"more than geometry.max_tilt_deg = {settings.max_tilt_deg:g}"
        )
        raise IngestError(
            ErrorCode.GANTRY_TILT,
            f"the slices were acquired with a gantry tilt of {tilt:.1f} degrees ({limit})",
        )
    axis = stack_dir if tilted else normal
    offsets = (positions - positions[0]) @ axis
    steps = np.diff(offsets)
    median = float(np.median(steps))
    tolerance = max(settings.spacing_tolerance_mm, settings.spacing_tolerance_fraction * median)

    relative = positions - positions[0]
    off_line = float(np.linalg.norm(relative - np.outer(relative @ stack_dir, stack_dir), axis=1).max())
    if off_line > tolerance:
        raise IngestError(
            ErrorCode.SLICE_SPACING_INCONSISTENT,
            f"the slice positions do not lie on one straight line (up to {off_line:.2f} mm off)",
        )

    warnings: list[IngestWarning] = []
    interpolation: tuple[Interpolation, ...] = ()
    uniform_step = float(offsets[-1] / (len(frames) - 1))
    if np.all(np.abs(steps - median) <= tolerance) and _grid_error(offsets, uniform_step) <= tolerance:
        n_out = len(frames)
        step = uniform_step
    else:
        found = _describe_steps(steps)
        if settings.on_irregular_spacing is RepairPolicy.REJECT:
            raise IngestError(
                ErrorCode.SLICE_SPACING_INCONSISTENT,
                f"the distance between slices varies ({found}; geometry.on_irregular_spacing = reject)",
            )
        longest = float(steps.max())
        if longest > (settings.max_gap_slices + 1) * median + tolerance:
            raise IngestError(
                ErrorCode.SLICE_SPACING_INCONSISTENT,
                f"a gap of {longest:.2f} mm between slices is more than geometry.max_gap_slices = "
                f"{settings.max_gap_slices} missing slices of {median:.3g} mm ({found})",
            )
        step = median
        n_out = int(math.floor(offsets[-1] / step + tolerance / step)) + 1
        interpolation = _gap_weights(offsets, step=step, n_out=n_out, tolerance=tolerance)
        n_interpolated = sum(1 for item in interpolation if item.weight != 0.0)
        warnings.append(
            IngestWarning(
                WarningCode.SPACING_RESAMPLED,
                f"irregular slice steps ({found}) resampled to {n_out} slices every {step:.4g} mm; "
                f"{n_interpolated} slices interpolated",
            )
        )

    if not tilted:
        return VolumePlan(
            size=(columns, rows, n_out),
            spacing=(col_spacing, row_spacing, step),
            origin=tuple(float(v) for v in positions[0]),  # type: ignore[arg-type]
            direction=_itk_direction(row, col, normal),  # type: ignore[arg-type]
            interpolation=interpolation,
            warnings=tuple(warnings),
            **common,
        )
    return _tilted_plan(
        common,
        row=row,
        col=col,
        stack_dir=stack_dir,
        origin=positions[0],
        spacing=(col_spacing, row_spacing, step),
        n_out=n_out,
        tilt=tilt,
        interpolation=interpolation,
        warnings=warnings,
    )


def _grid_error(offsets: np.ndarray, step: float) -> float:
    """Largest distance (mm) of a slice from its place ``k * step`` on a uniform grid.

    Steps that each stay within tolerance of the median can still drift (50 steps of 2.0 mm,
    then 49 of 2.18 mm): only the accumulated error tells whether a uniform grid holds the slices.
    """
    return float(np.abs(offsets - np.arange(len(offsets)) * step).max())


def _gap_weights(offsets: np.ndarray, *, step: float, n_out: int, tolerance: float) -> tuple[Interpolation, ...]:
    """Linear interpolation weights placing ``n_out`` slices every ``step`` mm on irregular offsets.

    A target position within ``tolerance`` of a source slice copies that slice exactly.
    """
    items = []
    last = len(offsets) - 1
    for i in range(n_out):
        target = i * step
        upper = int(np.searchsorted(offsets, target, side="left"))
        upper = min(max(upper, 0), last)
        lower = max(upper - 1, 0)
        if abs(offsets[upper] - target) <= tolerance:
            items.append(Interpolation(upper, upper, 0.0))
        elif abs(offsets[lower] - target) <= tolerance:
            items.append(Interpolation(lower, lower, 0.0))
        else:
            weight = float((target - offsets[lower]) / (offsets[upper] - offsets[lower]))
            items.append(Interpolation(lower, upper, min(max(weight, 0.0), 1.0)))
    return tuple(items)


def _tilted_plan(
    common: dict,
    *,
    row: np.ndarray,
    col: np.ndarray,
    stack_dir: np.ndarray,
    origin: np.ndarray,
    spacing: tuple[float, float, float],
    n_out: int,
    tilt: float,
    interpolation: tuple[Interpolation, ...],
    warnings: list[IngestWarning],
) -> VolumePlan:
    """Axial output grid for a sheared (gantry-tilted) stack.

    The output keeps the row direction and the table (stack) direction; its third axis runs
    through the image positions of the slices, its in-plane extent covers every slice.
    """
    col_spacing, row_spacing, step = spacing
    z_axis = stack_dir
    y_axis = np.cross(z_axis, row)
    y_axis /= np.linalg.norm(y_axis)
    x_axis = np.cross(y_axis, z_axis)
    rows, columns = common["rows"], common["columns"]
    corners = np.array(
        [
            i * col_spacing * row + j * row_spacing * col + k * step * stack_dir
            for i in (0, columns - 1)
            for j in (0, rows - 1)
            for k in (0, n_out - 1)
        ]
    )
    x_coords, y_coords = corners @ x_axis, corners @ y_axis
    eps = 1e-6
    x_min = float(x_coords.min())
    y_min = float(y_coords.min())
    size_x = int(math.floor((float(x_coords.max()) - x_min) / col_spacing + eps)) + 1
    size_y = int(math.floor((float(y_coords.max()) - y_min) / row_spacing + eps)) + 1
    new_origin = origin + x_min * x_axis + y_min * y_axis
    warnings = [
        *warnings,
        IngestWarning(
            WarningCode.GANTRY_TILT_CORRECTED,
            f"gantry tilt of {tilt:.2f} degrees corrected by resampling onto an axial grid "
            f"({size_x} x {size_y} x {n_out}; voxels outside the acquired slices are air)",
        ),
    ]
    return VolumePlan(
        size=(size_x, size_y, n_out),
        spacing=spacing,
        origin=tuple(float(v) for v in new_origin),  # type: ignore[arg-type]
        direction=_itk_direction(x_axis, y_axis, z_axis),  # type: ignore[arg-type]
        interpolation=interpolation,
        tilt_deg=float(tilt),
        source_origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        source_axes=tuple(float(v) for v in (*row, *col, *stack_dir)),
        source_spacing=spacing,
        warnings=tuple(warnings),
        **common,
    )
