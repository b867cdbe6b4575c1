"""``lunglesion run``: the whole pipeline over DICOM folders and volume files."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.exit_codes import EXIT_CODES_HELP


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        parents=parents,
        help="segment and measure every selected CT scan, link to treatment, write all outputs",
        description=(
            "Index the inputs, select one CT series per study, segment lungs and lesions, measure, link "
            "scans to the cohort's treatment timepoints and write per-scan files and cohort tables. "
            "Finished scans are reused on a rerun (resume); failed scans are retried."
        ),
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="DICOM folders and/or volume files")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--cohort", type=Path, metavar="FILE", help="cohort CSV with treatment events per patient")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default: config)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine (default: config)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (tcp://host:8786) to use")
    parser.add_argument("--num-parts", type=int, default=1, metavar="K", help="split the scans into K parts ...")
    parser.add_argument(
        "--part-id", type=int, metavar="I", help="... and process part I (0-based; required with --num-parts > 1)"
    )
    parser.add_argument(
        "--outputs", metavar="LIST", help="comma-separated per-scan outputs: csv,nifti,seg,qc (default: config)"
    )
    parser.add_argument("--force", action="store_true", help="recompute scans even when finished results exist")
    parser.add_argument(
        "--pseudonymize",
        type=Path,
        metavar="SECRET_FILE",
        help="replace patient IDs in every output (file names included) by a keyed hash of this secret",
    )
    parser.add_argument("--memory-limit", metavar="SIZE", help="per-worker memory limit of the local cluster, e.g. 4GB")
    parser.set_defaults(func=run)


def _check_memory_limit(text: str | None) -> None:
    """Refuse a ``--memory-limit`` Dask cannot read before anything starts (e.g. ``lots``); ``auto`` is Dask's own."""
    if text is None or text.strip().lower() == "auto":
        return
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, TypeError):
        raise ConfigError(f"--memory-limit: cannot read {text!r} as a size; write e.g. 4GB, 4GiB or 500MB") from None
    if value <= 0:
        raise ConfigError(f"--memory-limit must be a positive size, got {text!r}")


def run(args: argparse.Namespace) -> int:
    from pipeline.batch.outputs import parse_formats
    from pipeline.batch.runner import RunOptions, run_batch
    from pipeline.cli.common import settings_from_args, with_command_line

    settings = settings_from_args(args)
    try:
        formats = parse_formats([args.outputs] if args.outputs else settings.outputs.formats)
    except ValueError as exc:
        raise ConfigError(f"--outputs: {exc}") from None
    # with --scheduler the GPU check is left to the workers: they may have the GPU this process lacks
    settings = with_command_line(args, settings, check_gpu=not args.scheduler, formats=[f.value for f in formats])
    if args.num_parts > 1 and args.part_id is None:
        raise ConfigError(f"--num-parts {args.num_parts} needs --part-id (0..{args.num_parts - 1}): which part to run")
    _check_memory_limit(args.memory_limit)
    options = RunOptions(
        inputs=tuple(args.inputs),
        out_dir=args.out,
        cohort=args.cohort,
        device=settings.segmentation.device.value,
        workers=settings.run.workers,
        scheduler=args.scheduler,
        num_parts=args.num_parts,
        part_id=args.part_id if args.part_id is not None else 0,
        formats=formats,
        force=args.force,
        pseudonymize_secret=args.pseudonymize,
        memory_limit=args.memory_limit,
        log_level=args.log_level,
        log_phi=args.log_phi,
    )
    return int(run_batch(options, settings=settings).exit_code)
