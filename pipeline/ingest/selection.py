"""Series selection: which series of each study is analysed, and why every other one is not.

Each candidate is first judged on its own (:func:`rejection`: non-image objects, unreadable
pixels, secondary captures, other modalities, scouts, reports, reformats, non-axial stacks,
geometry problems, too few slices). Among a study's usable series the thinnest slices win;
ties go to the preferred kernel, then PRIMARY over SECONDARY images, then the larger
coverage, then more images, then the lower series number (deterministic to the end).
Every candidate leaves with ``selected``, a ``reason`` sentence and an ``error_code``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from pipeline.errors import ErrorCode
from pipeline.ingest.candidate import SeriesCandidate, StudyIssue
from pipeline.ingest.plan import SourceKind
from pipeline.ingest.settings import KernelPreference, SelectionSettings, SeriesPerStudy
from pipeline.ingest.sop_classes import is_non_image, is_secondary_capture

log = logging.getLogger(__name__)


def kernel_class(kernel: str, settings: SelectionSettings) -> str:
    """``sharp``, ``soft`` or ``unknown`` for a ConvolutionKernel value (first value if several)."""
    first = kernel.split("\\")[0].strip()
    if not first:
        return "unknown"
    if any(re.search(p, first, re.IGNORECASE) for p in settings.sharp_kernel_patterns):
        return "sharp"
    if any(re.search(p, first, re.IGNORECASE) for p in settings.soft_kernel_patterns):
        return "soft"
    return "unknown"


def _matches(text: str, patterns: Sequence[str]) -> str | None:
    for pattern in patterns:
        if re.search(pattern, text, re.IGNORECASE):
            return pattern
    return None


def _axial_deviation_deg(normal: Sequence[float]) -> float:
    return math.degrees(math.acos(min(1.0, abs(float(normal[2])))))


def rejection(candidate: SeriesCandidate, settings: SelectionSettings) -> tuple[ErrorCode, str] | None:
    """The first selection rule a candidate breaks on its own, as ``(code, sentence)``; ``None`` if usable."""
    if candidate.source_kind is SourceKind.DICOM:
        found = _dicom_rejection(candidate, settings)
        if found is not None:
            return found
    if candidate.slice_normal is not None:
        deviation = _axial_deviation_deg(candidate.slice_normal)
        if deviation > settings.max_axial_deviation_deg:
            return (
                ErrorCode.NOT_AXIAL,
                f"slices are {deviation:.0f} degrees from axial (sagittal/coronal or oblique; "
                f"selection.max_axial_deviation_deg = {settings.max_axial_deviation_deg:g})",
            )
    if candidate.geometry_error is not None:
        return candidate.geometry_error
    plan = candidate.plan
    if plan is None:
        return ErrorCode.MISSING_GEOMETRY, "the images carry no usable geometry"
    n_images = candidate.n_images if candidate.source_kind is SourceKind.DICOM else plan.size[2]
    if n_images < settings.min_slices or plan.z_extent_mm < settings.min_z_extent_mm:
        return (
            ErrorCode.TOO_FEW_SLICES,
            f"{n_images} image{'' if n_images == 1 else 's'} covering {plan.z_extent_mm:.3g} mm; "
            "a chest volume needs at least "
            f"{settings.min_slices} slices (selection.min_slices) and {settings.min_z_extent_mm:g} mm "
            "(selection.min_z_extent_mm)",
        )
    return None


def _dicom_rejection(candidate: SeriesCandidate, settings: SelectionSettings) -> tuple[ErrorCode, str] | None:
    modality = candidate.modality or "(none)"
    if is_non_image(candidate.sop_class_uid, candidate.modality):
        return (
            ErrorCode.NON_IMAGE_OBJECT,
            f"a {modality} object, not an image series (segmentations, structure sets, reports are not analysed)",
        )
    if candidate.pixel_error is not None:
        return candidate.pixel_error
    if is_secondary_capture(candidate.sop_class_uid):
        return ErrorCode.SECONDARY_CAPTURE, "a secondary capture (screenshot), not an acquired CT image"
    if candidate.modality not in settings.modalities:
        return (
            ErrorCode.NOT_CT,
            f"modality {modality} is not one of selection.modalities ({', '.join(settings.modalities)})",
        )
    if candidate.samples_per_pixel != 1:
        return ErrorCode.SECONDARY_CAPTURE, "colour (RGB) images are screenshots or overlays, not CT measurements"

    image_type = candidate.image_type
    description = candidate.series_description
    found = sorted(set(image_type or ()) & set(settings.localizer_image_type_values))
    pattern = _matches(description, settings.localizer_description_patterns)
    if found or pattern:
        why = f"ImageType {'/'.join(found)}" if found else f"description '{description}' matches '{pattern}'"
        return ErrorCode.LOCALIZER, f"a localizer/scout ({why})"
    pattern = _matches(description, settings.report_description_patterns)
    if pattern:
        return ErrorCode.SECONDARY_CAPTURE, f"a report or screenshot (description '{description}' matches '{pattern}')"
    if image_type is None:
        if not settings.accept_missing_image_type:
            return ErrorCode.DERIVED_IMAGE, "no ImageType element (selection.accept_missing_image_type = false)"
    else:
        if settings.require_original and (not image_type or image_type[0] != "ORIGINAL"):
            value = image_type[0] if image_type else "(empty)"
            return ErrorCode.DERIVED_IMAGE, f"ImageType value 1 is {value}, not ORIGINAL (selection.require_original)"
        found = sorted(set(image_type) & set(settings.derived_image_type_values))
        if found:
            return ErrorCode.DERIVED_IMAGE, f"a derived image (ImageType {'/'.join(found)})"
    pattern = _matches(description, settings.reformat_description_patterns)
    if pattern:
        return ErrorCode.DERIVED_IMAGE, f"a reformat (description '{description}' matches '{pattern}')"
    return None


def _primary_rank(candidate: SeriesCandidate) -> int:
    image_type = candidate.image_type or ()
    return 0 if len(image_type) > 1 and image_type[1] == "PRIMARY" else 1


def _kernel_rank(candidate: SeriesCandidate, settings: SelectionSettings) -> int:
    if settings.kernel_preference is KernelPreference.ANY:
        return 0
    found = kernel_class(candidate.kernel, settings)
    if found == settings.kernel_preference.value:
        return 0
    return 1 if found == "unknown" else 2


class _Rank(NamedTuple):
    """Tie-break order among equally thin series: smaller wins, field by field."""

    kernel: int
    secondary: int
    negative_coverage_mm: float
    negative_images: int
    series_number: float
    series_uid: str
    series_part: str
    scan_id: str


def _rank(candidate: SeriesCandidate, settings: SelectionSettings) -> _Rank:
    plan = candidate.plan
    coverage = round(plan.z_extent_mm, 3) if plan is not None else 0.0
    return _Rank(
        kernel=_kernel_rank(candidate, settings),
        secondary=_primary_rank(candidate),
        negative_coverage_mm=-coverage,
        negative_images=-candidate.n_images,
        series_number=candidate.series_number if candidate.series_number is not None else math.inf,
        series_uid=candidate.series_uid,
        series_part=candidate.series_part,
        scan_id=candidate.scan_id,
    )


def _thickness(candidate: SeriesCandidate) -> float:
    value = candidate.effective_thickness_mm
    return float(value) if value else math.inf


def _name(candidate: SeriesCandidate) -> str:
    number = f"series {candidate.series_number}" if candidate.series_number is not None else "series"
    description = f" '{candidate.series_description}'" if candidate.series_description else ""
    return f"{number}{description} ({candidate.scan_id})"


def _why_better(winner: SeriesCandidate, loser: SeriesCandidate, *, tied: bool, settings: SelectionSettings) -> str:
    if not tied:
        return f"thinner slices ({_thickness(winner):g} mm vs {_thickness(loser):g} mm)"
    better, worse = _rank(winner, settings), _rank(loser, settings)
    if better.kernel != worse.kernel:
        return (
            f"{settings.kernel_preference.value} kernel preferred (selection.kernel_preference): "
            f"'{winner.kernel}' vs '{loser.kernel}'"
        )
    if better.secondary != worse.secondary:
        return "PRIMARY images preferred over SECONDARY ones"
    if better.negative_coverage_mm != worse.negative_coverage_mm:
        return f"larger coverage ({-better.negative_coverage_mm:.0f} mm vs {-worse.negative_coverage_mm:.0f} mm)"
    if better.negative_images != worse.negative_images:
        return f"more images ({-better.negative_images} vs {-worse.negative_images})"
    return "equal on every rule; the lower series number (then UID) decides"


def _describe_selected(candidate: SeriesCandidate, *, usable: int, settings: SelectionSettings) -> str:
    plan = candidate.plan
    assert plan is not None
    kernel = kernel_class(candidate.kernel, settings)
    kernel_text = f", {kernel} kernel '{candidate.kernel}'" if candidate.kernel else ""
    basis = (
        "the only usable series of the study"
        if usable == 1
        else f"best of {usable} usable series (thinnest slices, then selection.kernel_preference = "
        f"{settings.kernel_preference.value}, then coverage)"
    )
    if candidate.source_kind is SourceKind.VOLUME_FILE:
        return f"selected: volume file in HU, {plan.size[2]} slices of {plan.spacing[2]:.3g} mm"
    return (
        f"selected: {candidate.n_images} images, {_thickness(candidate):g} mm slices{kernel_text}, "
        f"{plan.z_extent_mm:.0f} mm coverage; {basis}"
    )


def _study_key(candidate: SeriesCandidate) -> tuple[str, str]:
    if candidate.source_kind is SourceKind.VOLUME_FILE:
        return candidate.patient_id, f"volume:{candidate.scan_id}"
    return candidate.patient_id, candidate.study_uid


def apply_selection(
    candidates: Sequence[SeriesCandidate], *, settings: SelectionSettings
) -> tuple[list[SeriesCandidate], list[StudyIssue]]:
    """Apply the selection rules study by study.

    Returns
    -------
    candidates, study_issues
        The candidates with ``selected``, ``reason`` and ``error_code`` filled in (same
        order), and a ``NO_CT_SERIES`` issue for every study without a usable series.
        Candidates that share a scan id (which indexing never gives: a bug) are all refused
        with ``INTERNAL_ERROR`` rather than one replacing the other.
    """
    clashes = _duplicate_scan_ids(candidates)
    verdicts = {c.scan_id: _clash_verdict(c) if c.scan_id in clashes else rejection(c, settings) for c in candidates}
    studies: dict[tuple[str, str], list[SeriesCandidate]] = defaultdict(list)
    for candidate in candidates:
        studies[_study_key(candidate)].append(candidate)

    decided: dict[str, SeriesCandidate] = {}
    issues: list[StudyIssue] = []
    for key in sorted(studies):
        members = studies[key]
        usable = [c for c in members if verdicts[c.scan_id] is None]
        for candidate in members:
            verdict = verdicts[candidate.scan_id]
            if verdict is not None:
                decided[candidate.scan_id] = _refused(candidate, verdict)
        if not usable:
            codes = Counter(verdicts[c.scan_id][0].value for c in members)  # type: ignore[index]
            summary = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
            issues.append(
                StudyIssue(
                    patient_id=key[0],
                    study_uid=members[0].study_uid,
                    code=ErrorCode.NO_CT_SERIES,
                    message=f"none of the study's {len(members)} series can be analysed ({summary})",
                )
            )
            continue
        winner, tied_ids = _best(usable, settings)
        if settings.series_per_study is SeriesPerStudy.ALL:
            for candidate in usable:
                reason = _describe_selected(candidate, usable=1, settings=settings)
                if len(usable) > 1:
                    reason = reason.split(";")[0] + "; selection.series_per_study = all"
                    if candidate.scan_id == winner.scan_id:
                        reason += " (the series the one-per-study rules prefer)"
                decided[candidate.scan_id] = dataclasses.replace(
                    candidate,
                    selected=True,
                    error_code=None,
                    reason=reason,
                    preferred=candidate.scan_id == winner.scan_id,
                )
            continue
        decided[winner.scan_id] = dataclasses.replace(
            winner,
            selected=True,
            error_code=None,
            reason=_describe_selected(winner, usable=len(usable), settings=settings),
        )
        for candidate in usable:
            if candidate.scan_id == winner.scan_id:
                continue
            why = _why_better(winner, candidate, tied=candidate.scan_id in tied_ids, settings=settings)
            decided[candidate.scan_id] = dataclasses.replace(
                candidate,
                selected=False,
                error_code=ErrorCode.NOT_SELECTED,
                reason=f"not selected: {_name(winner)} preferred: {why}",
            )
    return [_refused(c, _clash_verdict(c)) if c.scan_id in clashes else decided[c.scan_id] for c in candidates], issues


def _best(usable: Sequence[SeriesCandidate], settings: SelectionSettings) -> tuple[SeriesCandidate, set[str]]:
    """The series the one-per-study rules choose, and the ids of those tied with it on thickness."""
    thinnest = min(_thickness(c) for c in usable)
    tied = [c for c in usable if _thickness(c) <= thinnest + settings.thickness_tie_mm]
    return min(tied, key=lambda c: _rank(c, settings)), {c.scan_id for c in tied}


def _duplicate_scan_ids(candidates: Sequence[SeriesCandidate]) -> set[str]:
    counts = Counter(c.scan_id for c in candidates)
    clashes = {scan_id for scan_id, n in counts.items() if n > 1}
    for scan_id in sorted(clashes):
        log.error("scan %s: %d candidates share this scan id; none of them is analysed", scan_id, counts[scan_id])
    return clashes


def _clash_verdict(candidate: SeriesCandidate) -> tuple[ErrorCode, str]:
    return (
        ErrorCode.INTERNAL_ERROR,
        f"another series or volume file of this index has the same scan id {candidate.scan_id} "
        "(a bug: please report it); none of them is analysed",
    )


def _refused(candidate: SeriesCandidate, verdict: tuple[ErrorCode, str]) -> SeriesCandidate:
    return dataclasses.replace(candidate, selected=False, error_code=verdict[0], reason=f"not selected: {verdict[1]}")
