"""Benchmark DICOM ingestion on the real data sets of ../shared/data (all numbers from one run).

Measures, for each full chest series (dlwpt 99 slices, POPI 141 slices):

* ``index``: :func:`pipeline.ingest.index_inputs` on the series folder (headers only);
* ``load``: :func:`pipeline.ingest.load_scan` of the selected candidate (pixels -> int16 HU image);
* ``sitk``: a plain SimpleITK ``ImageSeriesReader`` read of the same series (GDCM file-name
  sorting with the explicit series UID + ``Execute``), and the ratio ours / SimpleITK;

and the indexing throughput (files/s) on a folder of 1,000+ files: every shared DICOM set hard-linked
(or copied) several times into a temporary folder outside the repository. Timings are the median of
``--repeats`` runs with the files in the page cache (warm), single process.

Usage::

    python bench/bench_ingest.py [--repeats 5] [--copies 3] [--out bench/results/bench_ingest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SHARED_OPEN, data_folder

FULL_SERIES = ("dlwpt-chest-ct-dicom", "popi-4dct-phase00-itkelastix")
THROUGHPUT_SETS = (
    "dlwpt-chest-ct-dicom",
    "popi-4dct-phase00-itkelastix",
    "cip-chest-imaging-platform",
    "lidc-3slabs-nodule-outlines",
    "pydicom-ct-testfiles",
    "orthanc-tests-ct",
    "totalsegmentator-tests",
    "dicom2nifti-ct-edgecases",
)


def timed(function, repeats: int, *, label: str, minima: dict[str, float]) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls and the last result; the minimum goes to ``minima[label]``."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    minima[label] = round(min(times), 4)
    return statistics.median(times), result


def sitk_read(folder: Path, series_uid: str):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    return reader.Execute()


def with_workers(settings, *, index: int | None = None, pixels: int | None = None):
    from pipeline.config import Settings

    tree = settings.model_dump(mode="json")
    if index is not None:
        tree["index"]["workers"] = index
    if pixels is not None:
        tree["index"]["pixel_workers"] = pixels
    return Settings.model_validate(tree)


def bench_series(name: str, settings, repeats: int, *, minima: dict[str, float], subfolder: str = "") -> dict:
    from pipeline.ingest import index_inputs, load_scan

    folder = data_folder(name) / subfolder
    key = f"{name}/{subfolder}" if subfolder else name
    t_index, result = timed(
        lambda: index_inputs([folder], settings=settings), repeats, label=f"{key} index", minima=minima
    )
    (candidate,) = result.selected
    t_load, scan = timed(lambda: load_scan(candidate, settings=settings), repeats, label=f"{key} load", minima=minima)
    t_load_1, _ = timed(
        lambda: load_scan(candidate, settings=with_workers(settings, pixels=1)),
        repeats,
        label=f"{key} load 1 thread",
        minima=minima,
    )
    t_load_2, _ = timed(
        lambda: load_scan(candidate, settings=with_workers(settings, pixels=2)),
        repeats,
        label=f"{key} load 2 threads",
        minima=minima,
    )
    series_folder = Path(candidate.source_path)
    t_sitk, reference = timed(
        lambda: sitk_read(series_folder, candidate.series_uid), repeats, label=f"{key} sitk", minima=minima
    )
    assert reference.GetSize() == scan.image.GetSize()
    return {
        "series": key,
        "transfer_syntax": "\\".join(candidate.transfer_syntax_uids),
        "files": candidate.n_files,
        "size": list(scan.image.GetSize()),
        "index_s": round(t_index, 4),
        "load_s": round(t_load, 4),
        "load_1_thread_s": round(t_load_1, 4),
        "load_2_threads_s": round(t_load_2, 4),
        "index_plus_load_s": round(t_index + t_load, 4),
        "sitk_series_reader_s": round(t_sitk, 4),
        "load_over_sitk": round(t_load / t_sitk, 3),
        "index_plus_load_over_sitk": round((t_index + t_load) / t_sitk, 3),
    }


def build_many_files(target: Path, copies: int) -> int:
    """Hard-link (or copy) every file of the shared sets ``copies`` times under ``target``."""
    n = 0
    for copy in range(copies):
        for name in THROUGHPUT_SETS:
            source = data_folder(name)
            for path in source.rglob("*"):
                if not path.is_file() or path.name.startswith("."):
                    continue
                destination = target / f"copy{copy}" / name / path.relative_to(source)
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, destination)
                except OSError:
                    shutil.copy2(path, destination)
                n += 1
    return n


def bench_throughput(settings, copies: int, repeats: int, *, minima: dict[str, float]) -> list[dict]:
    from pipeline.ingest import index_inputs

    rows = []
    with tempfile.TemporaryDirectory(prefix="lunglesion-bench-") as tmp:
        root = Path(tmp)
        assert REPO not in root.parents, "the benchmark folder must be outside the repository"
        n_files = build_many_files(root, copies)
        for workers in (1, 2, 4, 8):
            configured = with_workers(settings, index=workers)
            elapsed, result = timed(
                lambda configured=configured: index_inputs([root], settings=configured),
                repeats,
                label=f"throughput {workers} workers",
                minima=minima,
            )
            rows.append(
                {
                    "index_workers": workers,
                    "files": n_files,
                    "series": len(result.candidates),
                    "skipped": len(result.skipped),
                    "seconds": round(elapsed, 3),
                    "files_per_s": round(n_files / elapsed, 1),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=3, help="copies of the shared sets for the throughput test")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bench_ingest.json")
    args = parser.parse_args()
    if not SHARED_OPEN.exists():
        print(f"needs the shared data sets at {SHARED_OPEN}", file=sys.stderr)
        return 2

    import pydicom
    import SimpleITK as sitk

    from pipeline.config import load_settings
    from pipeline.io.atomic import write_text_atomic

    settings = load_settings()
    minima: dict[str, float] = {}
    series = [bench_series(name, settings, args.repeats, minima=minima) for name in FULL_SERIES]
    # A real JPEG 2000 lossless series (20 slices of pelvis: selectable only without the chest-size rules).
    small = load_settings()
    tree = small.model_dump(mode="json")
    tree["selection"].update(min_slices=1, min_z_extent_mm=0.0)
    from pipeline.config import Settings

    series.append(
        bench_series(
            "totalsegmentator-tests",
            Settings.model_validate(tree),
            args.repeats,
            minima=minima,
            subfolder="example_ct_dicom",
        )
    )
    throughput = bench_throughput(settings, args.copies, max(1, args.repeats // 2), minima=minima)

    print(
        f"{'series':<47} {'files':>5} {'index s':>8} {'load s':>7} {'1 thread':>9} {'2 threads':>9} {'sitk s':>7} "
        f"{'load/sitk':>9} {'(idx+load)/sitk':>15}"
    )
    for row in series:
        print(
            f"{row['series']:<47} {row['files']:>5} {row['index_s']:>8.3f} {row['load_s']:>7.3f} "
            f"{row['load_1_thread_s']:>9.3f} {row['load_2_threads_s']:>9.3f} {row['sitk_series_reader_s']:>7.3f} "
            f"{row['load_over_sitk']:>9.2f} "
            f"{row['index_plus_load_over_sitk']:>15.2f}"
        )
    print()
    print(f"{'index workers':>13} {'files':>6} {'series':>6} {'skipped':>7} {'seconds':>8} {'files/s':>8}")
    for row in throughput:
        print(
            f"{row['index_workers']:>13} {row['files']:>6} {row['series']:>6} {row['skipped']:>7} "
            f"{row['seconds']:>8.3f} {row['files_per_s']:>8.1f}"
        )

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pydicom": pydicom.__version__,
            "SimpleITK": sitk.Version_VersionString(),
        },
        "settings": {"index.workers": settings.index.workers, "index.pixel_workers": settings.index.pixel_workers},
        "method": "median of repeats, warm page cache, one process; sitk = ImageSeriesReader with explicit series UID",
        "repeats": args.repeats,
        "series": series,
        "index_throughput": throughput,
        "minimum_seconds": minima,
        "load_average_at_end": os.getloadavg(),
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print("\nminimum seconds: " + ", ".join(f"{k} {v}" for k, v in minima.items()))
    print(f"load average at the end: {os.getloadavg()}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
