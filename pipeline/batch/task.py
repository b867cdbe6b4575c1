"""The work of one scan, run in a worker process: load -> segment -> measure -> write.

:func:`process_scan` never raises for a bad scan: every expected failure becomes a record
with ``status = failed``, an :class:`~pipeline.errors.ErrorCode` and a sentence. Its results
are written atomically under the scan's state folder, the done-marker last.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.batch.layout import ScanPaths
from pipeline.batch.markers import Fingerprint, write_done
from pipeline.batch.outputs import OutputFormat
from pipeline.batch.provenance import utc_now
from pipeline.config import Settings
from pipeline.errors import ErrorCode, LunglesionError
from pipeline.ingest.candidate import SeriesCandidate
from pipeline.ingest.scan import ScanMetadata
from pipeline.io.atomic import write_text_atomic
from pipeline.privacy import replace_identifiers

log = logging.getLogger(__name__)

#: Per-process state of a worker (torch threads and logging are set once per process).
_STATE: dict[str, Any] = {"threads_set": False, "logging": None}


@dataclass(frozen=True)
class ScanTask:
    """Everything a worker needs for one scan (small and picklable)."""

    candidate: SeriesCandidate
    paths: ScanPaths
    fingerprint: Fingerprint
    record_patient_id: str
    """Patient ID written into the record: the DICOM PatientID, or its pseudonym."""
    formats: tuple[OutputFormat, ...]
    device: str
    torch_threads: int
    pseudonymize: bool
    caption_title: str
    log_level: str = "INFO"
    log_phi: bool = False
    """The user's ``--log-level`` / ``--log-phi``, applied in the worker process too."""
    redactions: tuple[tuple[str, str], ...] = ()
    """(raw identifier, pseudonym) pairs replaced in free text (messages) when pseudonymising."""

    def redact(self, text: str) -> str:
        """``text`` with this scan's identifiers pseudonymised (no-op without ``--pseudonymize``)."""
        return replace_identifiers(text, self.redactions)

    def record_meta(self, meta: ScanMetadata) -> ScanMetadata:
        """The scan's metadata as its record shows it: patient ID mapped, identifiers in free text replaced."""
        return replace(
            meta,
            patient_id=self.record_patient_id,
            series_description=self.redact(meta.series_description),
            study_description=self.redact(meta.study_description),
        )


@dataclass(frozen=True)
class ScanOutcome:
    """What a worker returns to the main process."""

    scan_id: str
    status: str
    record: dict[str, str]
    error_code: str = ""
    error_message: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    worker_pid: int = 0
    model_loads_in_worker: int = 0
    device: str = ""
    """Where the network ran (``cpu`` / ``cuda``); empty when the scan failed before segmentation."""


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _configure_worker_logging(task: ScanTask) -> None:
    """The CLI's log settings in a Dask worker process (workers start without them).

    Outside a worker (a direct call) the caller's logging is left alone.
    """
    wanted = (task.log_level, task.log_phi)
    if _STATE["logging"] == wanted or not _in_dask_worker():
        return
    from pipeline.logs import configure_logging

    configure_logging(level=task.log_level, show_phi=task.log_phi)
    _STATE["logging"] = wanted


def _set_threads(n: int) -> None:
    if _STATE["threads_set"] or n <= 0:
        return
    import torch

    torch.set_num_threads(n)
    _STATE["threads_set"] = True


def format_record(record: dict[str, object]) -> dict[str, str]:
    """A record with every cell formatted exactly as ``scans.csv`` will show it."""
    from pipeline.reports.csv_tables import format_cell
    from pipeline.reports.records import INPUT_COLUMNS, METRIC_COLUMNS

    return {column.name: format_cell(column, record.get(column.name)) for column in INPUT_COLUMNS + METRIC_COLUMNS}


def _caption(title: str, metrics: Any) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f} %"

    row = metrics.as_row()
    lung = row.get("lung_ml")
    lung_text = "n/a" if lung is None else f"{lung:.0f} mL"
    return (
        f"{title}\nlung {lung_text} | lesion {pct(row.get('lesion_pct'))} "
        f"(GGO {pct(row.get('ggo_pct'))}, consolidation {pct(row.get('consolidation_pct'))}) "
        f"| severity {row.get('severity_score', 'n/a')}/30"
    )


def _write_outputs(task: ScanTask, scan: Any, segmentation: Any, metrics: Any) -> None:
    from pipeline import __version__

    if OutputFormat.NIFTI in task.formats:
        from pipeline.outputs.nifti import write_nifti_mask

        write_nifti_mask(segmentation, folder=task.paths.mask_dir, stem=task.paths.stem)
    if OutputFormat.SEG in task.formats and task.candidate.source_kind.value != "volume_file":
        from pipeline.outputs.dicom_seg import write_dicom_seg

        write_dicom_seg(
            segmentation,
            source_files=[Path(f) for f in task.candidate.files],
            destination=task.paths.seg_file,
            software_version=__version__,
            patient_id=task.fingerprint.subject if task.pseudonymize else None,
        )
    if OutputFormat.QC in task.formats:
        from pipeline.outputs.qc import render_qc

        caption = _caption(task.caption_title, metrics)
        render_qc(scan.image, segmentation, caption=caption, destination=task.paths.qc_picture)


def _run_stages(task: ScanTask, *, settings: Settings, seconds: dict[str, float], progress: dict[str, Any]) -> Any:
    """Load, segment, measure and write; return the metrics. Raises on failure (stage in ``progress``)."""
    from metrics.image import measure_image
    from pipeline.ingest.load import load_scan
    from segmentation import segment

    def timed(stage: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        progress["stage"] = stage
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:  # a failed stage's time counts too (the log says how long a scan took to fail)
            seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started

    scan = timed("load", load_scan, task.candidate, settings=settings)
    progress["meta"] = scan.meta
    segmentation = timed("segment", segment, scan.image, device=task.device, settings=settings.segmentation)
    progress["model"] = (segmentation.model_id, segmentation.model_sha256)
    progress["device"] = segmentation.device
    metrics = timed(
        "measure",
        measure_image,
        scan.image,
        segmentation,
        slice_thickness_mm=task.candidate.effective_thickness_mm,
        settings=settings.metrics,
        padding_hu=settings.hu.padding_hu,
    )
    try:
        timed("write", _write_outputs, task, scan, segmentation, metrics)
    except OSError as exc:  # disk full, permissions, a vanished output folder
        reason = exc.strerror or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        message = f"the results could not be written ({reason}){where}"
        raise LunglesionError(ErrorCode.OUTPUT_WRITE_FAILED, message) from exc
    return metrics


def process_scan(task: ScanTask, *, settings: Settings) -> ScanOutcome:
    """Load, segment, measure and write one scan; return its record (never raises for bad data)."""
    from metrics.vocabulary import ScanStatus
    from pipeline import __version__
    from pipeline.reports.records import scan_record
    from segmentation.inference import model_load_count

    _configure_worker_logging(task)
    _set_threads(task.torch_threads)
    candidate = task.candidate
    seconds: dict[str, float] = {}
    progress: dict[str, Any] = {
        "stage": "load",
        "meta": candidate.metadata(size=candidate.size or (0, 0, 0), spacing=candidate.spacing or (0.0, 0.0, 0.0)),
        "model": ("", task.fingerprint.model_sha256),
        "device": "",
    }
    metrics = None
    code, message = "", ""
    # A recompute replaces the scan's outputs: the old marker goes first, so a run killed half-way
    # leaves a scan that the next run recomputes, never old marker + new files; then the old
    # files, so a scan that now fails shows no mask or picture of an earlier configuration.
    task.paths.done_json.unlink(missing_ok=True)
    for old in task.paths.every_output_file():
        old.unlink(missing_ok=True)
    try:
        metrics = _run_stages(task, settings=settings, seconds=seconds, progress=progress)
    except LunglesionError as exc:
        code, message = exc.code.value, exc.message
    except MemoryError:
        code = ErrorCode.OUT_OF_MEMORY.value
        message = f"ran out of memory in stage '{progress['stage']}'"
    except Exception as exc:  # noqa: BLE001 - one broken scan never stops the batch
        log.error(
            "scan %s: unexpected %s in stage %s",
            candidate.scan_id,
            type(exc).__name__,
            progress["stage"],
            extra={"phi": {"traceback": task.redact(traceback.format_exc())}},
        )
        code = ErrorCode.INTERNAL_ERROR.value
        message = f"unexpected {type(exc).__name__} in stage '{progress['stage']}': {exc}"
    message = task.redact(message)
    status = ScanStatus.FAILED if code else ScanStatus.OK
    model_id, model_sha = progress["model"]
    record = scan_record(
        task.record_meta(progress["meta"]),
        metrics=metrics if not code else None,
        status=status,
        error_code=ErrorCode(code) if code else None,
        error_message=message,
        preferred_series=candidate.preferred,
        model_id=model_id,
        model_sha256=model_sha,
        pipeline_version=__version__,
    )
    if code:
        # The message may quote file paths (which can hold names): in the log only with --log-phi.
        log.warning(
            "scan %s failed in stage %s [%s]: %s (the full message is in errors.csv)",
            candidate.scan_id,
            progress["stage"],
            code,
            ErrorCode(code).description,
            extra={"phi": {"message": message}},
        )
    formatted = format_record(record)
    write_text_atomic(
        task.paths.result_json,
        json.dumps({"record": formatted, "seconds": seconds}, indent=2, sort_keys=True) + "\n",
    )
    write_done(task.paths.done_json, task.fingerprint, status=status.value, finished_at=utc_now())
    return ScanOutcome(
        scan_id=candidate.scan_id,
        status=status.value,
        record=formatted,
        error_code=code,
        error_message=message,
        seconds=seconds,
        worker_pid=os.getpid(),
        model_loads_in_worker=model_load_count(),
        device=progress["device"],
    )
