"""Build every table and plot of a run from its per-scan records: the one entry point the runner calls.

Files under ``out_dir``::

    scans.csv                         every scan, failed ones included
    cohort_summary.csv                one row per patient + the cohort row
    cohort_trajectories.png           all patients' lesion % and change from baseline
    patients/<stem>.csv               one patient's scans in time order
    patients/<stem>_events.csv        the patient's cohort events (infusions with their scan coverage)
    patients/<stem>_trajectory.png    the patient's lesion, GGO, consolidation % over time

``<stem>`` is :func:`pipeline.privacy.safe_path_component` of the patient ID (column
``patient_file_stem``). Every file is written atomically. ``patients/`` belongs to the report
writer: files matching its name patterns that were not written by this build (patients that
disappeared from the records or the cohort) are removed, so the folder always matches the tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metrics.columns import EVENT_COLUMNS, SCAN_COLUMNS, SUMMARY_COLUMNS
from metrics.settings import TimepointSettings
from pipeline.cohort.model import Cohort
from pipeline.reports.csv_tables import write_table
from pipeline.reports.linking import LinkedTables, link_records

log = logging.getLogger(__name__)

SCANS_CSV = "scans.csv"
COHORT_SUMMARY_CSV = "cohort_summary.csv"
COHORT_PLOT = "cohort_trajectories.png"
PATIENTS_DIR = "patients"
_PATIENT_SUFFIXES = (".csv", "_events.csv", "_trajectory.png")


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_reports` put each file (per-patient maps are keyed by patient ID)."""

    scans_csv: Path
    cohort_summary_csv: Path
    cohort_plot: Path | None
    patient_csvs: dict[str, Path] = field(default_factory=dict)
    patient_event_csvs: dict[str, Path] = field(default_factory=dict)
    patient_plots: dict[str, Path] = field(default_factory=dict)


def write_reports(
    records: Sequence[Mapping[str, object]],
    *,
    cohort: Cohort | None,
    settings: TimepointSettings,
    out_dir: Path,
    plots: bool = True,
) -> ReportPaths:
    """Link the records to the cohort and write every table (and plot) under ``out_dir``.

    Parameters
    ----------
    records
        One record per scan, as built by :func:`pipeline.reports.records.scan_record` (or the
        rows of an earlier ``scans.csv``); failed scans included.
    cohort
        The validated cohort file (:func:`pipeline.cohort.read_cohort`), or ``None``: the
        timepoint and change columns stay empty.
    settings
        The ``timepoints`` section of the configuration.
    out_dir
        Output folder (created if needed).
    plots
        Also draw the PNG plots (matplotlib); tables only when ``False``.

    Raises
    ------
    ValueError
        If a record is malformed (naming the record and the column).
    """
    out_dir = Path(out_dir)
    tables = link_records(records, cohort=cohort, settings=settings)
    return write_linked(tables, settings=settings, out_dir=out_dir, plots=plots)


def write_linked(tables: LinkedTables, *, settings: TimepointSettings, out_dir: Path, plots: bool) -> ReportPaths:
    """Write already linked tables (see :func:`write_reports`)."""
    patients_dir = out_dir / PATIENTS_DIR
    patients_dir.mkdir(parents=True, exist_ok=True)
    scans_csv = write_table(out_dir / SCANS_CSV, SCAN_COLUMNS, tables.scan_rows)
    summary_rows = [p.summary_row for p in tables.patients] + [tables.cohort_row]
    summary_csv = write_table(out_dir / COHORT_SUMMARY_CSV, SUMMARY_COLUMNS, summary_rows)

    written: set[Path] = set()
    paths = ReportPaths(scans_csv=scans_csv, cohort_summary_csv=summary_csv, cohort_plot=None)
    for patient in tables.patients:
        stem = patient.file_stem
        csv_path = write_table(patients_dir / f"{stem}.csv", SCAN_COLUMNS, patient.scan_rows)
        events_path = write_table(patients_dir / f"{stem}_events.csv", EVENT_COLUMNS, patient.event_rows)
        paths.patient_csvs[patient.patient_id] = csv_path
        paths.patient_event_csvs[patient.patient_id] = events_path
        written.update({csv_path, events_path})
        if plots:
            from pipeline.reports.plots import plot_patient

            plot_path = plot_patient(patient, patients_dir / f"{stem}_trajectory.png")
            paths.patient_plots[patient.patient_id] = plot_path
            written.add(plot_path)
    cohort_plot = None
    if plots:
        from pipeline.reports.plots import plot_cohort

        cohort_plot = plot_cohort(tables.patients, out_dir / COHORT_PLOT, settings=settings)
    _remove_stale(patients_dir, keep=written)
    log.info(
        "reports written: %d scans, %d patients, plots %s",
        len(tables.scan_rows),
        len(tables.patients),
        "on" if plots else "off",
    )
    return ReportPaths(
        scans_csv=scans_csv,
        cohort_summary_csv=summary_csv,
        cohort_plot=cohort_plot,
        patient_csvs=paths.patient_csvs,
        patient_event_csvs=paths.patient_event_csvs,
        patient_plots=paths.patient_plots,
    )


def _remove_stale(patients_dir: Path, *, keep: set[Path]) -> None:
    removed = 0
    for path in sorted(patients_dir.iterdir()):
        if path.is_file() and path.name.endswith(_PATIENT_SUFFIXES) and path not in keep:
            path.unlink()
            removed += 1
    if removed:  # file names hold patient IDs: log the count only
        log.info("removed %d stale patient file(s) of an earlier build from %s/", removed, PATIENTS_DIR)
