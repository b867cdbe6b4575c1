"""Benchmark ``lunglesion run`` end to end, stage by stage (all numbers from one invocation).

Everything runs through the installed console script, as a user would, on inputs written to a
temporary folder outside the repository (real data is read from ``../shared/data`` and never
copied into the repository):

* ``dlwpt-99``: the real chest series (512 x 512 x 99, 3 mm, Siemens B70f) plus a copy with new
  UIDs (a second study), so each run holds a cold scan (the worker loads the model) and a warm one;
* ``dlwpt-300``: the same series linearly resampled to 1 mm (512 x 512 x 297), written as DICOM
  with :func:`pipeline.synthetic.write_ct_series`, twice (cold + warm);
* each case with CSV outputs only and with CSV + NIfTI + DICOM SEG + QC;
* the ratio of the per-scan time to a plain SimpleITK ``ImageSeriesReader`` read of the same series;
* throughput of ``--workers 2`` vs ``--workers 1`` on 8 scans (8 re-identified copies of the real series);
* peak RSS of every process of a run (main process, each Dask worker), and for a
  512 x 512 x 800 volume (the real series resampled to 0.37 mm slices).

Stage seconds come from each scan's ``scans/<id>/result.json`` (``load``, ``segment``,
``measure``, ``write``); ``index`` is the run's indexing time (``run.json`` ``index_s``)
divided by its scans. Peak RSS is the kernel's high-water mark (``VmHWM``) of each process,
sampled every 0.1 s. The machine's load average is recorded before and after each part.

Usage::

    python bench/bench_pipeline.py [--skip-800] [--skip-throughput] [--device cpu|cuda]
        [--out bench/results/bench_pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, SHARED_OPEN, data_folder, resample_slices

LUNGLESION = Path(sys.executable).with_name("lunglesion")
SERIES = "2-LUNG_3.0_B70f-04083"
STAGES = ("load", "segment", "measure", "write")
ALL_OUTPUTS = "csv,nifti,seg,qc"


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def copy_with_new_uids(source: Path, destination: Path, *, tag: str) -> Path:
    """Copy a DICOM series with new patient/study/series/instance identifiers (a new scan)."""
    import pydicom

    from pipeline.synthetic import deterministic_uid

    destination.mkdir(parents=True, exist_ok=True)
    study = deterministic_uid("bench-study", tag)
    series = deterministic_uid("bench-series", tag)
    frame = deterministic_uid("bench-for", tag)
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(str(path))
        ds.PatientID = f"BENCH-{tag}"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.SOPInstanceUID = deterministic_uid("bench-image", tag, ds.SOPInstanceUID)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(str(destination / path.name))
    return destination


def resampled_series(source: Path, destination: Path, *, n_slices: int, tag: str) -> Path:
    """The series linearly resampled to ``n_slices`` over the same extent, written as DICOM."""
    import numpy as np
    import SimpleITK as sitk

    from pipeline.synthetic import Geometry, Patient, Series, Study, write_ct_series

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(source)))
    image = reader.Execute()
    spacing = image.GetSpacing()
    resampled = resample_slices(image, n_slices)
    step = resampled.GetSpacing()[2]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    # Geometry stacks slices along row x column; a series sorted the other way has a negative step.
    sign = float(np.sign(direction[:, 2] @ np.cross(direction[:, 0], direction[:, 1])))
    geometry = Geometry(
        spacing=(spacing[0], spacing[1], sign * step),
        origin=tuple(float(v) for v in image.GetOrigin()),
        row_direction=tuple(float(v) for v in direction[:, 0]),
        column_direction=tuple(float(v) for v in direction[:, 1]),
    )
    hu = sitk.GetArrayFromImage(resampled).clip(-1024, 3071)
    write_ct_series(
        destination,
        hu,
        geometry=geometry,
        patient=Patient(patient_id=f"BENCH-{tag}"),
        study=Study(study_id=tag),
        series=Series(description=f"CHEST {step:.2f} B70f resampled", kernel="B70f"),
    )
    return destination


def sitk_read_seconds(folder: Path, repeats: int = 3) -> float:
    """Median time of a plain SimpleITK series read (file list + pixels), the reference point."""
    import SimpleITK as sitk

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        reader.Execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------
# running and measuring
# --------------------------------------------------------------------------------------------


class PeakMemory:
    """Samples VmHWM (peak resident memory) of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peaks: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
                    cmdline = " ".join(process.cmdline())
                except (OSError, StopIteration, psutil.Error):
                    continue
                kind = (
                    "main"
                    if process.pid == self.pid
                    else ("worker" if "spawn_main" in cmdline and "resource_tracker" not in cmdline else "other")
                )
                entry = self.peaks.setdefault(process.pid, {"kind": kind, "peak_mb": 0.0})
                entry["peak_mb"] = max(entry["peak_mb"], round(hwm / 1024.0, 1))
            time.sleep(self.interval)

    def summary(self) -> dict:
        workers = sorted(v["peak_mb"] for v in self.peaks.values() if v["kind"] == "worker")
        main = [v["peak_mb"] for v in self.peaks.values() if v["kind"] == "main"]
        return {"main_peak_mb": max(main) if main else None, "worker_peaks_mb": workers}


def run_pipeline(inputs: list[Path], out: Path, *, outputs: str, workers: int, device: str = "cpu") -> dict:
    """One ``lunglesion run``: wall time, run.json, per-scan stage seconds, peak memory."""
    args = [
        str(LUNGLESION),
        "run",
        *(str(p) for p in inputs),
        "--out",
        str(out),
        "--outputs",
        outputs,
        "--workers",
        str(workers),
        "--device",
        device,
        "--log-level",
        "WARNING",
    ]
    load_before = load_average()
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakMemory(process.pid) as memory:
        stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"lunglesion run failed ({process.returncode}):\n{stderr[-3000:]}")
    run = json.loads((out / "run.json").read_text())
    scans = []
    for result in sorted(out.glob("scans/*/result.json")):
        data = json.loads(result.read_text())
        done = result.with_name("done.json")
        scans.append(
            {
                "scan_id": result.parent.name,
                "size": [int(data["record"][f"size_{a}"]) for a in "xyz"],
                "seconds": {stage: round(data["seconds"].get(stage, 0.0), 3) for stage in STAGES},
                "finished": done.stat().st_mtime,
                "lung_ml": data["record"]["lung_ml"],
                "status": data["record"]["status"],
            }
        )
    scans.sort(key=lambda s: s["finished"])
    for order, scan in enumerate(scans):
        scan["cold"] = order < workers  # the first scan of each worker also loads the model
        del scan["finished"]
    return {
        "wall_s": round(wall, 3),
        "elapsed_s": run["elapsed_s"],
        "index_s": run["index_s"],
        "n_scans": len(scans),
        "devices_used": run.get("devices_used", []),
        "scans": scans,
        "memory": memory.summary(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def per_scan_table(run: dict, *, sitk_read_s: float) -> dict:
    """Stage seconds of the warm scan (and the cold one), index share, end-to-end, ratio to SimpleITK."""
    index_share = run["index_s"] / max(1, run["n_scans"])
    rows = {}
    for scan in run["scans"]:
        key = "cold" if scan["cold"] else "warm"
        if key in rows:
            continue
        stages = {"index": round(index_share, 3), **scan["seconds"]}
        total = sum(stages.values())
        rows[key] = {
            **stages,
            "end_to_end_s": round(total, 3),
            "ratio_to_sitk_read": round(total / sitk_read_s, 2),
            "load_ratio_to_sitk_read": round(scan["seconds"]["load"] / sitk_read_s, 2),
        }
    return rows


def model_load_seconds() -> float:
    """Time to build the network and load the shipped weights in a fresh process (part of a cold scan)."""
    code = (
        "import time, torch; torch.set_num_threads(2); from segmentation import load_model; "
        "t = time.perf_counter(); load_model(None, device='cpu'); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 3)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bench_pipeline.json")
    parser.add_argument("--skip-800", action="store_true", help="skip the 512 x 512 x 800 memory case")
    parser.add_argument("--skip-throughput", action="store_true", help="skip the 8-scan workers 1 vs 2 case")
    parser.add_argument("--only-99", action="store_true", help="only the 99-slice case (a quick check)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the network runs")
    args = parser.parse_args()
    if not SHARED_OPEN.exists():
        print("bench_pipeline: ../shared/data is not present next to this checkout", file=sys.stderr)
        return 2
    import torch

    from pipeline import __version__
    from segmentation.weights import read_description

    description = read_description(None)
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": args.device,
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else None,
        },
        "lunglesion": __version__,
        "model": {"id": description.model_id, "sha256": description.sha256},
        "load_average_start": load_average(),
        "model_load_s": model_load_seconds(),
        "cases": {},
    }
    source = data_folder("dlwpt-chest-ct-dicom") / SERIES
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lunglesion-bench-pipeline-") as tmp:
        tmp = Path(tmp)
        cases = {
            "dlwpt-99": [copy_with_new_uids(source, tmp / "in99" / f"copy{i}", tag=f"99-{i}") for i in range(2)],
        }
        if not args.only_99:
            cases["dlwpt-300"] = [
                resampled_series(source, tmp / "in300" / f"copy{i}", n_slices=297, tag=f"300-{i}") for i in range(2)
            ]
        for name, folders in cases.items():
            sitk_s = sitk_read_seconds(folders[0])
            case = {"sitk_read_s": round(sitk_s, 3)}
            for label, outputs in (("csv", "csv"), ("all_outputs", ALL_OUTPUTS)):
                out = tmp / f"out-{name}-{label}"
                run = run_pipeline(folders, out, outputs=outputs, workers=1, device=args.device)
                case[label] = {"per_scan": per_scan_table(run, sitk_read_s=sitk_s), "run": run}
                shutil.rmtree(out)
                print(f"{name} {label}: {json.dumps(case[label]['per_scan'])}", file=sys.stderr)
            results["cases"][name] = case
            args.out.write_text(json.dumps(results, indent=2) + "\n")

        if not args.skip_throughput and not args.only_99:
            folders = cases["dlwpt-99"] + [
                copy_with_new_uids(source, tmp / "in99" / f"copy{i}", tag=f"99-{i}") for i in range(2, 8)
            ]
            throughput = {}
            for workers in (1, 2):
                out = tmp / f"out-throughput-{workers}"
                run = run_pipeline(folders, out, outputs="csv", workers=workers, device=args.device)
                throughput[f"workers_{workers}"] = {
                    "wall_s": run["wall_s"],
                    "elapsed_s": run["elapsed_s"],
                    "scans_per_minute": round(60.0 * run["n_scans"] / run["elapsed_s"], 2),
                    "segment_s_median": round(statistics.median(s["seconds"]["segment"] for s in run["scans"]), 3),
                    "memory": run["memory"],
                    "load_average_before": run["load_average_before"],
                    "load_average_after": run["load_average_after"],
                }
                shutil.rmtree(out)
                print(f"throughput workers={workers}: {json.dumps(throughput[f'workers_{workers}'])}", file=sys.stderr)
            w1, w2 = throughput["workers_1"]["elapsed_s"], throughput["workers_2"]["elapsed_s"]
            throughput["speedup_workers_2_vs_1"] = round(w1 / w2, 3)
            results["throughput_8_scans"] = throughput
            args.out.write_text(json.dumps(results, indent=2) + "\n")

        if not args.skip_800 and not args.only_99:
            shutil.rmtree(tmp / "in99", ignore_errors=True)
            shutil.rmtree(tmp / "in300", ignore_errors=True)
            folder = resampled_series(source, tmp / "in800", n_slices=800, tag="800")
            out = tmp / "out-800"
            run = run_pipeline([folder], out, outputs="csv", workers=1, device=args.device)
            results["volume_512x512x800"] = {
                "size": run["scans"][0]["size"],
                "seconds": run["scans"][0]["seconds"],
                "status": run["scans"][0]["status"],
                "elapsed_s": run["elapsed_s"],
                "memory": run["memory"],
                "load_average_before": run["load_average_before"],
                "load_average_after": run["load_average_after"],
            }
            print(f"512x512x800: {json.dumps(results['volume_512x512x800'])}", file=sys.stderr)
    results["load_average_end"] = load_average()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
