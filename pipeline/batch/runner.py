"""``lunglesion run``: ingest -> select -> segment -> measure -> link -> write, for a whole input tree.

The main process indexes the inputs, decides which scans still need work, sends one task per
scan to Dask workers (a LocalCluster, or an existing cluster), and finally rebuilds every
table, the QC index page and ``run.json`` from the per-scan results on disk, so the tables
always reflect every finished scan of the inputs, whichever run or shard computed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.batch import layout
from pipeline.batch.errors_table import ErrorRow, scan_error_rows, write_errors_csv
from pipeline.batch.executor import ExecutionOptions, TaskCrash, run_tasks
from pipeline.batch.fingerprint import input_fingerprint, scan_config_hash
from pipeline.batch.identity import PatientIdentity
from pipeline.batch.markers import Fingerprint, is_finished, read_done, same_computation, write_done
from pipeline.batch.outputs import OutputFormat
from pipeline.batch.progress import Progress
from pipeline.batch.provenance import utc_now, write_run_json
from pipeline.batch.task import ScanOutcome, ScanTask, format_record, process_scan
from pipeline.config import Settings, settings_hash
from pipeline.errors import ConfigError, ErrorCode, LunglesionError
from pipeline.exit_codes import ExitCode
from pipeline.ingest.candidate import IndexResult, SeriesCandidate
from pipeline.ingest.plan import SourceKind
from pipeline.io.atomic import TMP_PREFIX, remove_stale_temporaries, write_text_atomic
from pipeline.privacy import Pseudonymizer

log = logging.getLogger(__name__)

#: Lock file serialising the table rebuilds of concurrent parts (hidden, empty).
TABLES_LOCK = ".lunglesion-tables.lock"


@dataclass(frozen=True)
class RunOptions:
    """What the user asked ``lunglesion run`` to do."""

    inputs: tuple[Path, ...]
    out_dir: Path
    cohort: Path | None = None
    device: str = "auto"
    workers: int = 1
    scheduler: str | None = None
    num_parts: int = 1
    part_id: int = 0
    formats: tuple[OutputFormat, ...] = (OutputFormat.CSV,)
    force: bool = False
    pseudonymize_secret: Path | None = None
    memory_limit: str | None = None
    log_level: str = "INFO"
    log_phi: bool = False
    """The CLI's logging choices, passed on to the worker processes."""


@dataclass(frozen=True)
class RunSummary:
    """Counts of a finished run and its exit code."""

    exit_code: ExitCode
    scans_total: int
    scans_ok: int
    scans_failed: int
    scans_reused: int
    other_errors: int


def shard_of(scan_id: str, num_parts: int) -> int:
    """The part (0-based) a scan belongs to: stable whatever else is in the inputs."""
    return int(hashlib.sha256(scan_id.encode()).hexdigest()[:12], 16) % num_parts


def _session(candidate: SeriesCandidate) -> str:
    moment = candidate.acquisition_datetime or candidate.series_datetime or candidate.study_datetime
    return moment.strftime("%Y%m%d") if moment is not None else "nodate"


def _check_inputs(options: RunOptions) -> None:
    missing = [str(p) for p in options.inputs if not Path(p).exists()]
    if missing:
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"input path(s) not found: {', '.join(missing)}")
    if options.num_parts < 1 or not 0 <= options.part_id < options.num_parts:
        raise LunglesionError(
            ErrorCode.CONFIG_INVALID,
            f"--part-id must be in 0..{options.num_parts - 1} for --num-parts {options.num_parts}",
        )


def pseudonymizer_from_file(secret: Path) -> Pseudonymizer:
    """The keyed hash of ``--pseudonymize SECRET_FILE``; a missing or weak secret is a usage error."""
    try:
        return Pseudonymizer.from_file(secret)
    except FileNotFoundError:
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"pseudonymisation secret file not found: {secret}") from None
    except IsADirectoryError:
        raise ConfigError(f"--pseudonymize: {secret} is a folder, expected a file holding the secret") from None
    except ValueError as exc:
        raise ConfigError(f"--pseudonymize: {exc}") from None


def _log_removed(count: int) -> None:
    if count:
        log.info("removed %d temporary file(s) left by an interrupted run", count)


#: DICOM free text copied into tables: a patient identifier typed into it is replaced too.
FREE_TEXT_COLUMNS = ("series_description", "study_description")


def _redact_columns(row: dict[str, str], columns: tuple[str, ...], redact: Callable[[str], str]) -> None:
    """Replace identifiers in the ``columns`` of a table row that has them (in place)."""
    for column in columns:
        if column in row:
            row[column] = redact(row[column])


def _names_any(name: str, candidates: list[SeriesCandidate]) -> bool:
    """Whether a path names one of the candidates' scans (every per-scan file holds its scan id)."""
    return any(c.scan_id in name for c in candidates)


def _remove_temporaries(root: Path, *, keep: Callable[[str], bool]) -> int:
    """Delete the atomic writers' leftovers under ``root`` whose relative path ``keep`` rejects."""
    removed = 0
    for tmp in root.rglob(f"{TMP_PREFIX}*"):
        if tmp.is_file() and not keep(tmp.relative_to(root).as_posix()):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def _tables_lock(out_dir: Path) -> Iterator[None]:
    """Exclusive lock on the output folder's tables (POSIX ``flock``; a no-op where unavailable).

    Parts of a job array (``--num-parts``) may finish at the same moment; without the lock one
    part could replace the tables with a version built before the other part's last scan.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(out_dir / TABLES_LOCK, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _torch_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class _Collector:
    """Receives outcomes from workers, writes failure records for crashed tasks, updates progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.outcomes: dict[str, ScanOutcome] = {}
        self.model_loads: dict[int, int] = {}
        self.devices: set[str] = set()

    def __call__(self, task: ScanTask, result: Any) -> None:
        if isinstance(result, TaskCrash):
            result = _crash_outcome(task, result)
        self.outcomes[task.candidate.scan_id] = result
        if result.worker_pid:
            self.model_loads[result.worker_pid] = result.model_loads_in_worker
        if result.device:
            self.devices.add(result.device)
        self.progress.update(scan_id=task.candidate.scan_id, status=result.status, seconds=sum(result.seconds.values()))


def _crash_outcome(task: ScanTask, crash: TaskCrash) -> ScanOutcome:
    """Record a scan whose worker died, exactly like a failure inside the worker."""
    from metrics.vocabulary import ScanStatus
    from pipeline import __version__
    from pipeline.reports.records import scan_record

    candidate = task.candidate
    message = task.redact(crash.message)
    meta = candidate.metadata(size=candidate.size or (0, 0, 0), spacing=candidate.spacing or (0.0, 0.0, 0.0))
    record = format_record(
        scan_record(
            task.record_meta(meta),
            metrics=None,
            status=ScanStatus.FAILED,
            error_code=crash.code,
            error_message=message,
            preferred_series=candidate.preferred,
            model_sha256=task.fingerprint.model_sha256,
            pipeline_version=__version__,
        )
    )
    write_text_atomic(task.paths.result_json, json.dumps({"record": record, "seconds": {}}, indent=2) + "\n")
    write_done(task.paths.done_json, task.fingerprint, status="failed", finished_at=utc_now())
    log.warning(
        "scan %s failed [%s]: %s",
        candidate.scan_id,
        crash.code.value,
        crash.code.description,
        extra={"phi": {"message": message}},
    )
    return ScanOutcome(candidate.scan_id, "failed", record, crash.code.value, message)


def _read_result(paths: layout.ScanPaths) -> dict[str, str] | None:
    """The record of a scan whose done-marker the caller has checked (``None`` when unreadable)."""
    try:
        return json.loads(paths.result_json.read_text(encoding="utf-8"))["record"]
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable result %s (%s)", paths.result_json, exc)
        return None


def run_batch(options: RunOptions, *, settings: Settings) -> RunSummary:
    """Run the whole pipeline; see the module notes. Returns the summary with the exit code.

    Raises
    ------
    LunglesionError
        ``INPUT_NOT_FOUND``, ``CONFIG_INVALID`` or ``COHORT_INVALID`` before any scan is touched.
    """
    return BatchRun(options, settings=settings).execute()


class BatchRun:
    """One invocation of ``lunglesion run``, step by step (see :meth:`execute`)."""

    def __init__(self, options: RunOptions, *, settings: Settings) -> None:
        from pipeline.cohort import read_cohort

        _check_inputs(options)
        self.options = options
        self.settings = settings
        self.started_at, self._t0 = utc_now(), time.perf_counter()
        cohort = read_cohort(options.cohort) if options.cohort else None
        secret = options.pseudonymize_secret
        pseudonymizer = pseudonymizer_from_file(secret) if secret else None
        self.identity = PatientIdentity(cohort=cohort, pseudonymizer=pseudonymizer)
        self.out_dir = Path(options.out_dir)
        self.index: IndexResult | None = None
        self._config_hash = scan_config_hash(settings)
        self._fingerprints: dict[str, Fingerprint] = {}

    def execute(self) -> RunSummary:
        """Index, plan, compute, then rebuild every table from the results on disk."""
        from pipeline.ingest import index_inputs
        from segmentation.segment import segmenter_identity

        self.out_dir.mkdir(parents=True, exist_ok=True)
        sharded = self.options.num_parts > 1
        if not sharded:
            _log_removed(remove_stale_temporaries(self.out_dir))
        self.index = index_inputs(list(self.options.inputs), settings=self.settings)
        index_seconds = time.perf_counter() - self._t0
        selected = list(self.index.selected)
        mine = [c for c in selected if shard_of(c.scan_id, self.options.num_parts) == self.options.part_id]
        log.info(
            "indexed %d file(s): %d series, %d selected scan(s), %d in this part",
            self.index.n_files_seen,
            len(self.index.candidates),
            len(selected),
            len(mine),
        )
        if sharded:
            # Other parts may be writing into the same folder right now: only this part's
            # leftovers are removed here, the tables' leftovers under the tables lock below.
            _log_removed(_remove_temporaries(self.out_dir, keep=lambda name: not _names_any(name, mine)))
        model_id, model_sha = segmenter_identity(self.settings.segmentation)
        tasks, reused = self._plan(mine, model_sha=model_sha)
        collector = self._compute(tasks, reused=reused, total=len(mine))
        with _tables_lock(self.out_dir):
            if sharded:
                _remove_temporaries(self.out_dir, keep=lambda name: _names_any(name, selected))
            # Tables reflect every finished scan of these inputs (all parts), not only this run's.
            # Parts of a job array build them one at a time (the lock), so the last one to do so
            # sees every scan that any part finished.
            records, stale = self._current_records(selected, model_sha=model_sha)
            for record in records:  # (results of runs made before --pseudonymize was given, too)
                _redact_columns(record, FREE_TEXT_COLUMNS + ("error_message",), self.identity.redact)
            error_rows = self._write_index_and_errors(records)
            self._write_reports(records)
            n_ok = sum(1 for r in records if r.get("status") == "ok")
            n_failed = sum(1 for r in records if r.get("status") == "failed")
            # Files and studies that could not be used (a study's series rows explain its one row).
            other_errors = sum(1 for r in error_rows if r.is_failure and r.level in ("file", "study"))
            exit_code = ExitCode.SOME_FAILED if (n_failed or other_errors) else ExitCode.OK
            counts = {
                "files_seen": self.index.n_files_seen,
                "series": len(self.index.candidates),
                "scans_selected": len(selected),
                "scans_in_this_part": len(mine),
                "scans_computed": len(tasks),
                "scans_reused": reused,
                "scans_stale": stale,
                "scans_ok": n_ok,
                "scans_failed": n_failed,
                "other_errors": other_errors,
            }
            self._write_provenance(
                counts=counts,
                exit_code=exit_code,
                index_seconds=index_seconds,
                model=(model_id, model_sha),
                model_loads=sorted(collector.model_loads.values()),
                devices=sorted(collector.devices),
            )
        log.info(
            "run finished: %d ok, %d failed, %d reused, %d other error(s); results in %s",
            n_ok,
            n_failed,
            reused,
            other_errors,
            self.out_dir,
        )
        return RunSummary(exit_code, len(selected), n_ok, n_failed, reused, other_errors)

    def paths_for(self, candidate: SeriesCandidate) -> layout.ScanPaths:
        """Where the files of ``candidate``'s scan go."""
        return layout.ScanPaths.build(
            self.out_dir,
            scan_id=candidate.scan_id,
            subject=self.identity.subject_label(candidate),
            session=_session(candidate),
        )

    def _plan(self, candidates: list[SeriesCandidate], *, model_sha: str) -> tuple[list[ScanTask], int]:
        """Tasks for the scans that are not finished with the same fingerprint (all with ``--force``)."""
        tasks, reused = [], 0
        for candidate in candidates:
            paths = self.paths_for(candidate)
            fingerprint = self._fingerprint(candidate, model_sha=model_sha)
            if not self.options.force and is_finished(paths.done_json, fingerprint):
                dicom = candidate.source_kind is not SourceKind.VOLUME_FILE
                missing = [f for f in paths.output_files(self.options.formats, dicom_source=dicom) if not f.is_file()]
                if not missing:
                    reused += 1
                    continue
                log.info("scan %s: %d output file(s) missing: computed again", candidate.scan_id, len(missing))
            tasks.append(
                ScanTask(
                    candidate=candidate,
                    paths=paths,
                    fingerprint=fingerprint,
                    record_patient_id=self.identity.record_patient_id(candidate.patient_id),
                    formats=self.options.formats,
                    device=self.options.device,
                    torch_threads=_torch_threads(self.options.workers),
                    pseudonymize=self.identity.pseudonymized,
                    caption_title=self.identity.redact(
                        f"{paths.stem}  ({candidate.series_description or 'no description'})"
                    ),
                    log_level=self.options.log_level,
                    log_phi=self.options.log_phi,
                    redactions=self.identity.scan_redactions(candidate),
                )
            )
        if reused:
            log.info("%d scan(s) already finished with the same inputs, config and model: reused", reused)
        return tasks, reused

    def _fingerprint(self, candidate: SeriesCandidate, *, model_sha: str) -> Fingerprint:
        """What ``candidate``'s results must have been computed from to count for this run.

        Computed once per scan and run (planning and the tables both need it; the input
        fingerprint stats every file of the series).
        """
        from pipeline import __version__

        cached = self._fingerprints.get(candidate.scan_id)
        if cached is not None:
            return cached
        fingerprint = Fingerprint(
            input_fingerprint=input_fingerprint(Path(f) for f in candidate.files),
            config_hash=self._config_hash,
            model_sha256=model_sha,
            pipeline_version=__version__,
            outputs=tuple(f.value for f in self.options.formats),
            subject=self.identity.subject_label(candidate),
        )
        self._fingerprints[candidate.scan_id] = fingerprint
        return fingerprint

    def _current_records(self, selected: list[SeriesCandidate], *, model_sha: str) -> tuple[list[dict[str, str]], int]:
        """The results on disk computed from this run's inputs, configuration and model.

        A scan of another part of a sharded run may still hold the result of an earlier run
        with another configuration or model (that part has not recomputed it yet): such a
        result is left out of the tables, like a scan not computed yet, and counted.
        """
        records, stale = [], 0
        for candidate in selected:
            paths = self.paths_for(candidate)
            expected = self._fingerprint(candidate, model_sha=model_sha)
            marker = read_done(paths.done_json)
            if marker is None:
                continue
            if not same_computation(marker, expected):
                stale += 1
                continue
            record = _read_result(paths)
            if record is not None:
                records.append(record)
        if stale:
            log.warning(
                "%d scan(s) of other parts hold results of another configuration, model or input version: "
                "left out of the tables until their part recomputes them",
                stale,
            )
        return records, stale

    def _compute(self, tasks: list[ScanTask], *, reused: int, total: int) -> _Collector:
        progress = Progress(total=total)
        collector = _Collector(progress)
        with progress:
            for _ in range(reused):
                progress.update(scan_id="(previous run)", status="ok", reused=True)
            run_tasks(
                process_scan,
                tasks,
                key=lambda task: task.candidate.scan_id,
                options=ExecutionOptions(
                    workers=self.options.workers,
                    scheduler=self.options.scheduler,
                    memory_limit=self.options.memory_limit,
                ),
                on_result=collector,
                settings=self.settings,
            )
        return collector

    def _write_index_and_errors(self, records: list[dict[str, str]]) -> list[ErrorRow]:
        """``index.csv``, ``skipped_files.csv`` and ``errors.csv`` (identifiers mapped, paths redacted)."""
        from pipeline.ingest.report import INDEX_COLUMNS, SKIPPED_COLUMNS, index_rows, write_rows

        identity, index = self.identity, self.index
        rows = index_rows(index)
        for row in rows:
            row["patient_id"] = identity.record_patient_id(row["patient_id"])
            _redact_columns(row, FREE_TEXT_COLUMNS + ("source_path", "reason"), identity.redact)
        write_rows(self.out_dir / layout.INDEX_CSV, INDEX_COLUMNS, rows)
        skipped = [
            {"path": identity.redact(i.path), "error_code": i.code.value, "reason": identity.redact(i.message)}
            for i in index.skipped
        ]
        write_rows(self.out_dir / layout.SKIPPED_CSV, SKIPPED_COLUMNS, skipped)

        error_rows = scan_error_rows(records)
        error_rows += [
            ErrorRow(
                level="study",
                error_code=issue.code.value,
                message=issue.message,
                patient_id=identity.record_patient_id(issue.patient_id),
                study_uid=issue.study_uid,
            )
            for issue in index.study_issues
        ]
        # The series of a study that has no usable series, each with its own reason (LOCALIZER,
        # GANTRY_TILT, ...): the study row alone would hide which series failed and why.
        unusable = {(i.patient_id, i.study_uid) for i in index.study_issues if i.code is ErrorCode.NO_CT_SERIES}
        error_rows += [
            ErrorRow(
                level="series",
                error_code=c.error_code.value,
                message=c.reason,
                patient_id=identity.record_patient_id(c.patient_id),
                study_uid=c.study_uid,
                series_uid=c.series_uid,
                scan_id=c.scan_id,
                path=c.source_path,
            )
            for c in index.candidates
            if not c.selected and c.error_code is not None and (c.patient_id, c.study_uid) in unusable
        ]
        error_rows += [
            ErrorRow(level="file", error_code=issue.code.value, message=issue.message, path=issue.path)
            for issue in index.skipped
        ]
        write_errors_csv(self.out_dir / layout.ERRORS_CSV, error_rows, redact=identity.redact)
        return error_rows

    def _write_reports(self, records: list[dict[str, str]]) -> None:
        from pipeline.reports.writer import write_reports

        write_reports(records, cohort=self.identity.cohort(), settings=self.settings.timepoints, out_dir=self.out_dir)
        if OutputFormat.QC in self.options.formats:
            self._write_qc_index(records)

    def _write_qc_index(self, records: list[dict[str, str]]) -> None:
        from pipeline.outputs.qc import QCEntry, write_qc_index

        by_id = {c.scan_id: c for c in self.index.candidates}
        entries = []
        for record in sorted(records, key=lambda r: (r.get("patient_id", ""), r.get("acquisition_datetime", ""))):
            candidate = by_id.get(record.get("scan_id", ""))
            if candidate is None:
                continue
            paths = self.paths_for(candidate)
            if record.get("status") == "failed":
                numbers = [("status", "failed"), ("error", record.get("error_code", ""))]
            else:
                numbers = [
                    ("lung (mL)", record.get("lung_ml", "")),
                    ("lesion (%)", record.get("lesion_pct", "")),
                    ("GGO (%)", record.get("ggo_pct", "")),
                    ("consolidation (%)", record.get("consolidation_pct", "")),
                    ("severity (0-30)", record.get("severity_score", "")),
                ]
            entries.append(
                QCEntry(
                    title=paths.stem,
                    picture=paths.qc_picture,
                    thumbnail=paths.qc_thumbnail,
                    numbers=numbers,
                    status=record.get("status", "ok"),
                )
            )
        write_qc_index(entries, destination=self.out_dir / layout.QC_DIR / "index.html")

    def _write_provenance(
        self,
        *,
        counts: dict[str, int],
        exit_code: ExitCode,
        index_seconds: float,
        model: tuple[str, str],
        model_loads: list[int],
        devices: list[str],
    ) -> None:
        options, identity = self.options, self.identity
        write_run_json(
            self.out_dir / layout.RUN_JSON,
            {
                "command": "run",
                "started_at": self.started_at,
                "finished_at": utc_now(),
                "elapsed_s": round(time.perf_counter() - self._t0, 3),
                "index_s": round(index_seconds, 3),
                "inputs": [identity.redact(str(Path(p).resolve())) for p in options.inputs],
                "cohort_file": identity.redact(str(options.cohort)) if options.cohort else None,
                "pseudonymized": identity.pseudonymized,
                "device": options.device,
                "devices_used": devices,
                "workers": options.workers,
                "scheduler": options.scheduler,
                "memory_limit": options.memory_limit,
                "num_parts": options.num_parts,
                "part_id": options.part_id,
                "outputs": [f.value for f in options.formats],
                "model": {"id": model[0], "sha256": model[1]},
                "model_loads_per_worker": model_loads,
                "config": self.settings.model_dump(mode="json"),
                "config_sha256": settings_hash(self.settings),
                "counts": counts,
                "exit_code": int(exit_code),
            },
        )
