"""``lunglesion report RESULTS_DIR [--cohort FILE] [--out DIR]``: rebuild the tables of a run.

Reads the per-scan records from ``RESULTS_DIR/scans.csv`` (metadata, metrics and status of every
scan) and rebuilds ``scans.csv``, ``cohort_summary.csv``, ``patients/`` and the plots with the
given cohort file and configuration -- e.g. after correcting the cohort file or changing the
response thresholds -- without measuring anything again. ``lunglesion run`` ends with the same
library call (:func:`pipeline.reports.write_reports`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ErrorCode, LunglesionError
from pipeline.exit_codes import ExitCode

if TYPE_CHECKING:
    from pipeline.cohort.model import Cohort

DESCRIPTION = """\
Rebuild scans.csv, cohort_summary.csv, patients/<patient>.csv, patients/<patient>_events.csv and
the trajectory plots from the scans.csv of an earlier run, linking the scans to the treatment
events of --cohort FILE (CSV: patient_id,event,datetime; see metrics/README.md).
Nothing is measured again. Exit status 0 when the tables were written, 2 for a missing or
invalid scans.csv, cohort file or configuration.
"""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``report`` sub-command."""
    parser = subparsers.add_parser(
        "report",
        parents=parents,
        help="rebuild the per-patient and cohort tables from a run's scans.csv",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "results_dir", type=Path, metavar="RESULTS_DIR", help="output folder of a run (holds scans.csv)"
    )
    parser.add_argument("--cohort", type=Path, metavar="FILE", help="cohort CSV file (treatment events per patient)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the tables here (default: RESULTS_DIR)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables only, no PNG plots")
    parser.add_argument(
        "--pseudonymize",
        type=Path,
        metavar="SECRET_FILE",
        help="the secret the run was pseudonymised with: the cohort file's IDs are replaced by the same pseudonyms",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read scans.csv and the cohort file, write the tables."""
    from pipeline.cli.common import settings_from_args
    from pipeline.cohort import read_cohort
    from pipeline.reports import load_scan_records, write_reports
    from pipeline.reports.writer import SCANS_CSV

    settings = settings_from_args(args)
    scans_csv = args.results_dir / SCANS_CSV
    if not scans_csv.is_file():
        raise LunglesionError(
            ErrorCode.INPUT_NOT_FOUND, f"{scans_csv}: not found (is RESULTS_DIR a run's output folder?)"
        )
    cohort = read_cohort(args.cohort) if args.cohort is not None else None
    if cohort is not None:
        cohort = _as_in_run(cohort, results_dir=args.results_dir, secret=args.pseudonymize)
    try:
        records = load_scan_records(scans_csv)
        paths = write_reports(
            records,
            cohort=cohort,
            settings=settings.timepoints,
            out_dir=args.out or args.results_dir,
            plots=not args.no_plots,
        )
    except ValueError as exc:
        print(f"lunglesion: error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    print(f"wrote {paths.scans_csv}, {paths.cohort_summary_csv} and {len(paths.patient_csvs)} patient table(s)")
    return int(ExitCode.OK)


def _as_in_run(cohort: Cohort, *, results_dir: Path, secret: Path | None) -> Cohort:
    """The cohort with the run's pseudonyms in place of its IDs when the run was pseudonymised.

    A pseudonymised run's tables hold ``sub...`` pseudonyms; linking them with the cohort file's
    own IDs would link nothing and write those IDs into the new tables, so that needs the secret.
    """
    import json

    from pipeline.batch.identity import PatientIdentity
    from pipeline.batch.layout import RUN_JSON
    from pipeline.batch.runner import pseudonymizer_from_file

    run_json = results_dir / RUN_JSON
    try:
        pseudonymized = bool(json.loads(run_json.read_text(encoding="utf-8")).get("pseudonymized"))
    except (OSError, ValueError, AttributeError):
        pseudonymized = False  # tables written by the library or an older version: as given
    if secret is None:
        if pseudonymized:
            raise LunglesionError(
                ErrorCode.CONFIG_INVALID,
                f"{run_json}: the run was pseudonymised; give the same --pseudonymize SECRET_FILE so that "
                "the cohort file's IDs become the pseudonyms of the tables",
            )
        return cohort
    return PatientIdentity(cohort=cohort, pseudonymizer=pseudonymizer_from_file(secret)).cohort()
