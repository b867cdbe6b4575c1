"""Benchmark of the metrics stage and of the report writer (not a test; numbers go to the engineer's note).

Usage::

    python bench/bench_metrics.py [--repeats 5] [--json bench/results/metrics.json]

Measures, on this machine, in one run:

* ``measure_scan`` on synthetic 512 x 512 x N chest volumes (int16 HU, uint8 masks; lungs about
  12 % of the voxels, lesions in the dependent lower lungs), N = 300 and 800: best and median
  wall time of ``--repeats`` runs, and the two phases (labelled counting, calibration sample);
* a plain full-volume reference pass (``np.count_nonzero(lungs)``) for scale;
* ``write_reports`` for 100 patients x 4 scans: tables only, and with all plots.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metrics.calibration import check_calibration  # noqa: E402
from metrics.scan import _count_classes, measure_scan  # noqa: E402
from pipeline.config import load_settings  # noqa: E402


def chest(n_z: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic 512 x 512 x n_z chest: air, an elliptic body, two ellipsoid lungs, dependent lesions."""
    rng = np.random.default_rng(seed)
    shape = (n_z, 512, 512)
    z = np.linspace(-1, 1, n_z)[:, None, None]
    y = np.arange(512)[None, :, None]
    x = np.arange(512)[None, None, :]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 235.0) ** 2 < 1
    hu = np.broadcast_to(np.where(body, 40, -1000).astype(np.int16), shape).copy()
    hu += rng.integers(-15, 16, size=shape, dtype=np.int16)
    lungs = np.zeros(shape, np.uint8)
    for label, cx in ((1, 175), (2, 337)):
        inside = (z / 0.9) ** 2 + ((y - 250) / 140.0) ** 2 + ((x - cx) / 75.0) ** 2 < 1
        lungs[inside] = label
    in_lung = lungs > 0
    hu[in_lung] = (-860 + rng.normal(0, 40, size=int(in_lung.sum()))).astype(np.int16)
    lesions = np.zeros(shape, np.uint8)
    lesions[in_lung & (y > 300) & (z < 0.3)] = 1
    lesions[in_lung & (y > 350) & (z < 0.0)] = 2
    hu[lesions == 1] = -550
    hu[lesions == 2] = 20
    return hu, lungs, lesions


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def bench_measure(n_z: int, repeats: int, settings) -> dict:
    hu, lungs, lesions = chest(n_z)

    def run():
        return measure_scan(
            hu=hu,
            lungs=lungs,
            lesions=lesions,
            spacing_zyx=(1.0, 0.7, 0.7),
            superior_sign=1,
            slice_thickness_mm=1.0,
            settings=settings.metrics,
            padding_hu=-1000,
        )

    result = run()
    total = timed(run, repeats)
    counting = timed(lambda: _count_classes(hu, lungs, lesions), repeats)
    calibration = timed(
        lambda: check_calibration(hu, lungs, lesions, settings=settings.metrics.calibration, padding_hu=-1000), repeats
    )
    reference = timed(lambda: np.count_nonzero(lungs), repeats)
    return {
        "shape_zyx": list(hu.shape),
        "voxels_million": hu.size / 1e6,
        "lung_fraction_of_voxels": float(np.count_nonzero(lungs) / lungs.size),
        "measure_scan_best_s": min(total),
        "measure_scan_median_s": statistics.median(total),
        "labelled_counting_best_s": min(counting),
        "calibration_sample_best_s": min(calibration),
        "count_nonzero_reference_best_s": min(reference),
        "lesion_pct": result.lesion_pct,
        "severity_score": result.severity_score,
        "air_hu": result.air_hu,
        "soft_tissue_hu": result.soft_tissue_hu,
    }


def bench_reports(settings, *, n_patients: int = 100, scans_per_patient: int = 4) -> dict:
    from pipeline.cohort import read_cohort
    from pipeline.reports import write_reports

    hu, lungs, lesions = chest(24)
    metrics = measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=lesions,
        spacing_zyx=(10.0, 0.7, 0.7),
        superior_sign=1,
        slice_thickness_mm=1.0,
        settings=settings.metrics,
    ).as_row()
    start = datetime(2025, 3, 1, 10)
    records, cohort_lines = [], ["patient_id,event,datetime"]
    for p in range(n_patients):
        patient = f"P{p:03d}"
        for dose in range(3):
            cohort_lines.append(f"{patient},infusion,{(start + timedelta(days=2 * dose)).isoformat()}")
        for s in range(scans_per_patient):
            row = dict(metrics)
            row["lesion_pct"] = max(0.0, 30.0 - 5 * s + (p % 7))
            records.append(
                {
                    **row,
                    "patient_id": patient,
                    "study_uid": f"1.2.{p}.{s}",
                    "series_uid": f"1.2.{p}.{s}.1",
                    "acquisition_datetime": start + timedelta(days=2 * s - 1, hours=p % 5),
                    "status": "ok",
                }
            )
    with tempfile.TemporaryDirectory() as tmp:
        cohort_path = Path(tmp) / "cohort.csv"
        cohort_path.write_text("\n".join(cohort_lines) + "\n")
        cohort = read_cohort(cohort_path)
        tables = timed(
            lambda: write_reports(
                records, cohort=cohort, settings=settings.timepoints, out_dir=Path(tmp) / "t", plots=False
            ),
            3,
        )
        with_plots = timed(
            lambda: write_reports(
                records, cohort=cohort, settings=settings.timepoints, out_dir=Path(tmp) / "p", plots=True
            ),
            1,
        )
    return {
        "patients": n_patients,
        "scans": len(records),
        "tables_only_best_s": min(tables),
        "tables_and_plots_s": with_plots[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "metrics.json")
    args = parser.parse_args()
    settings = load_settings()
    results = {
        "measure_scan": [bench_measure(n, args.repeats, settings) for n in (300, 800)],
        "write_reports": bench_reports(settings),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    for item in results["measure_scan"]:
        print(
            f"measure_scan {item['shape_zyx']}: best {item['measure_scan_best_s']:.3f} s, median "
            f"{item['measure_scan_median_s']:.3f} s (counting {item['labelled_counting_best_s']:.3f} s, calibration "
            f"{item['calibration_sample_best_s']:.3f} s; count_nonzero reference "
            f"{item['count_nonzero_reference_best_s']:.3f} s; "
            f"lungs {100 * item['lung_fraction_of_voxels']:.1f} % of voxels)"
        )
    r = results["write_reports"]
    print(
        f"write_reports {r['patients']} patients / {r['scans']} scans: tables {r['tables_only_best_s']:.2f} s, "
        f"tables + {r['patients'] + 1} plots {r['tables_and_plots_s']:.2f} s"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
