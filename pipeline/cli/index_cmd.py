"""``lunglesion index INPUT... [--csv FILE]``: every series found, whether it was selected, and why."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.exit_codes import ExitCode

DESCRIPTION = """\
Index DICOM folders (searched recursively; any file names; DICOMDIR or not) and volume files
(NIfTI, NRRD, MetaImage) by their headers only, group them into patient / study / series,
and apply the series selection rules of the configuration. Prints a table of every series
and of the files that were skipped; with --csv, writes one row per series.
Exit status 0 when the index ran (even if series were rejected), 2 for a missing input or a
bad configuration.
"""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``index`` sub-command."""
    parser = subparsers.add_parser(
        "index",
        parents=parents,
        help="list every series found and whether it was selected",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="DICOM folder or volume file")
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write one row per series (patient_id, study_uid, series_uid, ..., selected, reason, error_code)",
    )
    parser.add_argument(
        "--skipped-csv",
        type=Path,
        metavar="FILE",
        help="write one row per skipped file (path, error_code, reason); "
        "default with --csv: next to it, NAME.skipped.csv",
    )
    parser.set_defaults(func=run)


def skipped_csv_path(csv_path: Path) -> Path:
    """Default skipped-files CSV next to the index CSV: ``index.csv`` -> ``index.skipped.csv``."""
    name = csv_path.name[: -len(".csv")] if csv_path.name.lower().endswith(".csv") else csv_path.name
    return csv_path.with_name(f"{name}.skipped.csv")


def run(args: argparse.Namespace) -> int:
    """Index the inputs, print the table, write the CSV files asked for."""
    from pipeline.cli.common import settings_from_args
    from pipeline.ingest.index import index_inputs
    from pipeline.ingest.report import format_index_table, write_index_csv, write_skipped_csv

    settings = settings_from_args(args)
    result = index_inputs(args.inputs, settings=settings)
    print(format_index_table(result), end="")
    if args.csv is not None:
        write_index_csv(result, args.csv)
        print(f"wrote {args.csv}")
    skipped_path = args.skipped_csv or (skipped_csv_path(args.csv) if args.csv is not None else None)
    if skipped_path is not None:
        write_skipped_csv(result, skipped_path)
        print(f"wrote {skipped_path}")
    return int(ExitCode.OK)
