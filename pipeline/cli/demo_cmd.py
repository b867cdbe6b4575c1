"""``lunglesion demo``: generate a small synthetic cohort and run the whole pipeline on it."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path("lunglesion-demo")


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=parents,
        help="generate a synthetic 3-patient cohort and run the whole pipeline on it",
        description=(
            "Write a synthetic cohort (3 patients, 4 chest CTs each around three infusions two days apart, "
            "with known lesion burdens that improve, stay stable or worsen) as DICOM plus a cohort file into "
            "DIR/input, run 'lunglesion run' with every output (CSV, NIfTI, DICOM SEG, QC) into DIR/results, "
            "and print the true and measured lesion percentages. Running it again reuses what is finished."
        ),
        epilog="Exit codes as 'lunglesion run': 0 all done, 1 internal error, 2 bad usage/config, 3 some scans failed.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help=f"demo folder (default: ./{DEFAULT_OUT})"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default: config)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default: config run.workers)")
    parser.add_argument("--force", action="store_true", help="recompute every scan even when finished results exist")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.cli.common import settings_from_args, with_command_line
    from pipeline.demo.run import DemoOptions, run_demo
    from pipeline.demo.summary import agreement, format_table

    settings = with_command_line(args, settings_from_args(args))
    result = run_demo(
        DemoOptions(
            out_dir=args.out,
            workers=settings.run.workers,
            device=settings.segmentation.device.value,
            force=args.force,
        ),
        settings=settings,
    )
    summary = result.summary
    results = result.results_dir
    inputs = result.inputs
    design = result.design
    n_patients = len({row.patient_id for row in result.rows})
    generated = "reused" if inputs.reused else f"generated in {result.generate_seconds:.0f} s"
    days = ", ".join(f"{day:g}" for day in design.infusion_days)
    print(
        f"\nlunglesion demo: {len(result.rows)} synthetic chest CTs of {n_patients} patients "
        f"({generated}), pipeline run in {result.run_seconds:.0f} s: "
        f"{summary.scans_ok} ok, {summary.scans_failed} failed, {summary.scans_reused} reused.\n"
        f"\ninput (what a hospital archive would hold):\n"
        f"  {inputs.dicom_dir}   DICOM: one {design.spacing[2]:g} mm chest CT and one scout per visit\n"
        f"  {inputs.cohort_csv}   infusions per patient\n"
        f"  {inputs.truth_csv}   the true volumes of every CT\n"
        f"\nresults (what lunglesion wrote):\n"
        f"  {results / 'scans.csv'}   one row per scan: volumes, lesion %, severity, phase, change, response\n"
        f"  {results / 'cohort_summary.csv'}   one row per patient + the cohort\n"
        f"  {results / 'patients'}/   per-patient tables and trajectory plots\n"
        f"  {results / 'cohort_trajectories.png'}\n"
        f"  {results / 'qc' / 'index.html'}   QC pictures of every scan (open in a browser)\n"
        f"  {results / 'masks'}/   NIfTI label maps (open over the CT in 3D Slicer / ITK-SNAP)\n"
        f"  {results / 'seg'}/   DICOM SEG (PACS, OHIF, 3D Slicer)\n"
        f"  {results / 'errors.csv'}, {results / 'index.csv'}, {results / 'run.json'}\n"
        f"\nTrue vs measured lesion burden (% of lung volume) and response to treatment "
        f"(infusions on days {days}):\n"
    )
    print(format_table(result.rows))
    summary_of = agreement(result.rows)
    if summary_of.n_measured:
        print(
            f"\nmeasured - true lesion %: mean |difference| {summary_of.mean_abs_difference_pp:.1f} pp, "
            f"largest {summary_of.max_abs_difference_pp:.1f} pp over {summary_of.n_measured} scans; "
            f"response label as the truth's for {summary_of.n_responses_agree} of {summary_of.n_responses} scans "
            f"(rules: timepoints.response in the configuration)."
        )
    print()
    return int(summary.exit_code)
