"""Benchmark ``segmentation.segment()`` on the real dlwpt chest series (all numbers from one run).

Cases, each in its own subprocess so that peak RSS is per case:

* ``dlwpt-99``: the real series as read (512 x 512 x 99, 0.56 x 0.56 x 3 mm);
* ``dlwpt-300``: the same series linearly resampled to 1 mm slices (512 x 512 x 295);
* ``dlwpt-1000``: resampled to 0.3 mm slices (512 x 512 x 981), the top of the 10-1000 slice
  range ``segment()`` is specified for: it shows whether memory stays bounded by the working grid.

For each case the subprocess loads the model once (``load_s``), then times ``--repeats`` calls of
``segment()`` on the in-memory image (whole call: orientation, resampling to the working grid,
network, clean-up, labels back on the input grid) and reports the median and minimum, the peak
RSS of the process (model + image + segmentation), the RSS with the image read and the model
loaded (``before_segment_rss_mb``; the difference is what segmentation itself adds) and the lung
volume found (sanity). With

``--classical`` the HU-threshold baseline is timed the same way. Torch threads come from the
configuration (``segmentation.threads``).

Usage::

    python bench/bench_segment.py [--repeats 5] [--classical] [--cases dlwpt-99 ...]
                                  [--out bench/results/bench_segment.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SHARED_OPEN, data_folder, resample_slices

CASES = {"dlwpt-99": None, "dlwpt-300": 1.0, "dlwpt-1000": 0.3}
"""Benchmark case -> slice spacing (mm) the real series is resampled to (``None``: as read)."""


def prepare_volumes(workdir: Path, names: list[str]) -> dict[str, Path]:
    """Write the benchmark volumes as NIfTI (read back by each subprocess)."""
    import SimpleITK as sitk

    folder = data_folder("dlwpt-chest-ct-dicom") / "2-LUNG_3.0_B70f-04083"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = sitk.Cast(reader.Execute(), sitk.sitkInt16)
    size, spacing = image.GetSize(), image.GetSpacing()
    paths = {}
    for name in names:
        slice_mm = CASES[name]
        volume = image
        if slice_mm is not None:
            volume = resample_slices(image, int(round((size[2] - 1) * spacing[2] / slice_mm)) + 1)
        paths[name] = workdir / f"{name}.nii"
        sitk.WriteImage(volume, str(paths[name]))
        del volume
    return paths


def child(path: Path, repeats: int, method: str) -> dict:
    """Run in the subprocess: load once, segment ``repeats`` times, report."""
    import resource

    import numpy as np
    import SimpleITK as sitk

    from pipeline.config import load_settings
    from segmentation import load_model, segment

    settings = load_settings().segmentation
    settings = settings.model_validate({**settings.model_dump(), "method": method})
    image = sitk.ReadImage(str(path))
    start = time.perf_counter()
    if method == "model":
        load_model(settings.weights, device=settings.device.value, threads=settings.threads or None)
    load_s = time.perf_counter() - start
    before_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    times = []
    result = None
    for _ in range(repeats):
        result = None  # a batch keeps one scan's result at a time; so does the benchmark
        start = time.perf_counter()
        result = segment(image, settings=settings)
        times.append(time.perf_counter() - start)
    lungs = sitk.GetArrayViewFromImage(result.lungs)
    lesions = sitk.GetArrayViewFromImage(result.lesions)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    import torch

    return {
        "size": list(image.GetSize()),
        "spacing": [round(v, 4) for v in image.GetSpacing()],
        "method": method,
        "model_id": result.model_id,
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 3),
        "segment_median_s": round(statistics.median(times), 3),
        "segment_min_s": round(min(times), 3),
        "segment_all_s": [round(t, 3) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "before_segment_rss_mb": round(before_rss_mb, 1),
        "lung_ml": round(float((lungs > 0).sum()) * voxel_ml, 1),
        "lesion_fraction_pct": round(100.0 * float((lesions > 0).sum()) / max(1, int((lungs > 0).sum())), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--classical", action="store_true", help="also time the classical baseline")
    parser.add_argument(
        "--cases", nargs="+", choices=sorted(CASES), default=list(CASES), help="which volumes (default: all)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bench_segment.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.method)))
        return 0
    if not SHARED_OPEN.exists():
        print("bench_segment: ../shared/data is not present next to this checkout", file=sys.stderr)
        return 2
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "repeats": args.repeats,
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="lunglesion-bench-") as tmp:
        paths = prepare_volumes(Path(tmp), args.cases)
        methods = ["model"] + (["classical"] if args.classical else [])
        for method in methods:
            for name, path in paths.items():
                repeats = args.repeats if method == "model" else max(1, min(2, args.repeats))
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), "--repeats", str(repeats), "--method", method],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                )
                record = json.loads(out.stdout.strip().splitlines()[-1])
                results["cases"][f"{name}/{method}"] = record
                print(
                    f"{name:10s} {method:9s} size {record['size']} segment median {record['segment_median_s']:.2f} s "
                    f"(min {record['segment_min_s']:.2f}) load {record['load_s']:.2f} s "
                    f"peak RSS {record['peak_rss_mb']:.0f} MB (before segment() {record['before_segment_rss_mb']:.0f}) "
                    f"lung {record['lung_ml']:.0f} ml "
                    f"lesions {record['lesion_fraction_pct']:.2f} %"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
