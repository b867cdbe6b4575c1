"""Generate the demo cohort, run the whole pipeline on it, compare with the truth."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.batch.outputs import OutputFormat
from pipeline.config import Settings
from pipeline.demo import design as designs
from pipeline.demo.design import DemoDesign
from pipeline.demo.generate import DemoInputs, write_demo_inputs
from pipeline.demo.summary import ComparisonRow, compare

log = logging.getLogger(__name__)

INPUT_DIR = "input"
RESULTS_DIR = "results"


@dataclass(frozen=True)
class DemoOptions:
    """What ``lunglesion demo`` was asked to do."""

    out_dir: Path
    workers: int = 1
    device: str = "auto"
    force: bool = False
    design: DemoDesign | None = None
    """The cohort to generate; ``None``: :data:`pipeline.demo.design.DEFAULT_DESIGN`."""


@dataclass(frozen=True)
class DemoResult:
    """Where everything went, how the run ended, and the comparison with the truth."""

    design: DemoDesign
    inputs: DemoInputs
    results_dir: Path
    summary: object
    """The :class:`~pipeline.batch.runner.RunSummary` of the pipeline run."""
    rows: tuple[ComparisonRow, ...]
    generate_seconds: float
    run_seconds: float


def run_demo(options: DemoOptions, *, settings: Settings) -> DemoResult:
    """Write the demo inputs under ``out_dir/input`` and run every stage into ``out_dir/results``.

    All per-scan outputs are written (CSV tables, NIfTI masks, DICOM SEG, QC pictures).
    A second call reuses both the generated input and the finished scans (``force`` recomputes).
    """
    from pipeline.batch.runner import RunOptions, run_batch

    out_dir = Path(options.out_dir)
    design = options.design or designs.DEFAULT_DESIGN
    started = time.perf_counter()
    inputs = write_demo_inputs(out_dir / INPUT_DIR, design=design)
    generated = time.perf_counter()
    results = out_dir / RESULTS_DIR
    summary = run_batch(
        RunOptions(
            inputs=(inputs.dicom_dir,),
            out_dir=results,
            cohort=inputs.cohort_csv,
            device=options.device,
            workers=options.workers,
            formats=tuple(OutputFormat),
            force=options.force,
        ),
        settings=settings,
    )
    finished = time.perf_counter()
    rows = compare(inputs.truth, results / "scans.csv", settings=settings.timepoints.response)
    return DemoResult(
        design=design,
        inputs=inputs,
        results_dir=results,
        summary=summary,
        rows=tuple(rows),
        generate_seconds=generated - started,
        run_seconds=finished - generated,
    )
