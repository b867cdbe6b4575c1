"""Phase 1 of ingestion: index headers, group series, plan volumes, select per study.

:func:`index_inputs` reads no pixel data. It returns an :class:`~pipeline.ingest.candidate.IndexResult`
whose selected candidates carry everything :func:`~pipeline.ingest.load.load_scan` needs,
so a batch run can index once and send each candidate to a worker.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import IngestError, WarningCode
from pipeline.ingest.candidate import FileIssue, IndexResult, SeriesCandidate
from pipeline.ingest.dicom_header import DicomHeader, read_dicom_header
from pipeline.ingest.dicom_values import moment_sort_key
from pipeline.ingest.discovery import find_inputs
from pipeline.ingest.scan import IngestWarning
from pipeline.ingest.selection import apply_selection
from pipeline.ingest.series import build_dicom_candidates
from pipeline.ingest.volume_files import volume_candidate

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)


def _read_one(path: str) -> DicomHeader | FileIssue:
    try:
        return read_dicom_header(Path(path))
    except IngestError as exc:
        return FileIssue(path, exc.code, exc.message, exc.series_uid)


def read_headers(paths: Sequence[str], *, workers: int) -> tuple[list[DicomHeader], list[FileIssue]]:
    """Read the headers of many files with a thread pool; failures become :class:`FileIssue` records."""
    if workers <= 1 or len(paths) < 2:
        results = [_read_one(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lunglesion-index") as pool:
            results = list(pool.map(_read_one, paths))
    headers = [r for r in results if isinstance(r, DicomHeader)]
    issues = [r for r in results if isinstance(r, FileIssue)]
    return headers, issues


def _with_lost_files(candidates: list[SeriesCandidate], skipped: Sequence[FileIssue]) -> list[SeriesCandidate]:
    """A ``FILES_SKIPPED`` warning on each series that lost files it could not read (e.g. truncated).

    Without it a series missing a truncated slice looks merely repaired (``SPACING_RESAMPLED``:
    a slice interpolated) and the reason is only in the file-level rows of ``errors.csv``.
    """
    lost: dict[str, Counter[str]] = defaultdict(Counter)
    for issue in skipped:
        if issue.series_uid:
            lost[issue.series_uid][issue.code.value] += 1
    if not lost:
        return candidates
    out = []
    for candidate in candidates:
        codes = lost.get(candidate.series_uid)
        if codes:
            n = sum(codes.values())
            what = ", ".join(f"{count} {code}" for code, count in sorted(codes.items()))
            warning = IngestWarning(
                WarningCode.FILES_SKIPPED,
                f"{n} file{'s' if n > 1 else ''} of this series could not be read ({what}) and "
                f"{'were' if n > 1 else 'was'} left out (listed in errors.csv)",
            )
            candidate = dataclasses.replace(candidate, warnings=(*candidate.warnings, warning))
        out.append(candidate)
    return out


def _order(candidate: SeriesCandidate) -> tuple:
    when = candidate.study_datetime
    return (
        candidate.patient_id,
        when is None,
        moment_sort_key(when) if when is not None else (datetime.min, False),
        candidate.study_uid,
        candidate.series_number if candidate.series_number is not None else math.inf,
        candidate.series_uid,
        candidate.series_part,
        candidate.source_path,
        candidate.scan_id,
    )


def index_inputs(paths: Sequence[str | Path], *, settings: Settings) -> IndexResult:
    """Index folders and files: every series found, its planned volume, and the selection verdict.

    Parameters
    ----------
    paths
        Folders (searched recursively; DICOMDIR or not; any file names) and volume files
        (``index.volume_suffixes``).
    settings
        The run's settings (sections ``index``, ``selection``, ``geometry``).

    Returns
    -------
    IndexResult
        Candidates sorted by patient, study date, study, series number; skipped files sorted
        by path; a ``NO_CT_SERIES`` issue per study without a usable series.

    Raises
    ------
    IngestError
        ``INPUT_NOT_FOUND`` when an input path does not exist. Nothing else: bad files and bad
        series are recorded in the result.
    """
    start = time.perf_counter()
    found = find_inputs(paths, settings=settings.index)
    headers, skipped = read_headers(found.dicom, workers=settings.index.workers)
    candidates, dropped = build_dicom_candidates(headers, settings=settings.geometry)
    skipped.extend(dropped)
    for path, key in found.volumes:
        made = volume_candidate(
            Path(path), key=key, suffixes=settings.index.volume_suffixes, settings=settings.geometry
        )
        if isinstance(made, FileIssue):
            skipped.append(made)
        else:
            candidates.append(made)

    candidates = _with_lost_files(candidates, skipped)
    decided, study_issues = apply_selection(candidates, settings=settings.selection)
    decided.sort(key=_order)
    elapsed = time.perf_counter() - start
    n_files = len(found.dicom) + len(found.volumes)
    result = IndexResult(
        candidates=tuple(decided),
        skipped=tuple(sorted(skipped, key=lambda issue: issue.path)),
        study_issues=tuple(sorted(study_issues, key=lambda issue: (issue.patient_id, issue.study_uid))),
        n_files_seen=n_files,
        elapsed_s=elapsed,
    )
    for candidate in result.candidates:
        log.debug(
            "scan %s: %s%s",
            candidate.scan_id,
            candidate.reason,
            f" [{candidate.error_code.value}]" if candidate.error_code else "",
        )
    n_studies = len({(c.patient_id, c.study_uid or c.scan_id) for c in result.candidates})
    log.info(
        "indexed %d files in %.1f s: %d series in %d studies, %d selected, %d files skipped",
        n_files,
        elapsed,
        len(result.candidates),
        n_studies,
        len(result.selected),
        len(result.skipped),
    )
    return result
