"""``lunglesion evaluate``: score the segmenter against reference masks (Dice, volumes, lesion fractions)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.exit_codes import ExitCode

DESCRIPTION = """\
Segment every case of FOLDER and compare with its reference masks. Layouts:
  <case>_ct.nii.gz + <case>_lungs.nii.gz (1 right, 2 left) + <case>_lesions.nii.gz (1 GGO, 2 consolidation)
  <case>_ct.nii.gz + <case>_label.nii.gz, with --label-map
  images/<case>.nii.gz + labels/<case>.nii.gz, with --label-map
(.nii, .nrrd and .mha work too). An optional <case>_ignore.nii.gz (non-zero = not scored) leaves
out what the reference does not describe, e.g. a real abnormality in a synthetic case's background.
With --synthetic-validation instead of FOLDER, the model card's
synthetic validation set is built from --data-root and evaluated.
Writes OUT/evaluation.csv (one row per case: Dice right/left lung, lesion, GGO, consolidation;
volumes; lesion fractions and their error in percentage points; where the lesion volume error
lies: reference lesion outside the predicted lung, missed inside it, false lesion on normal
and outside the reference lung), OUT/summary.json and
OUT/summary.md (aggregates and the model card's acceptance checks).
Exit status 0 when every case was evaluated, 3 when some failed, 2 for bad usage.
"""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        parents=parents,
        help="compare segmentations with reference masks (Dice, volume and lesion-fraction errors)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", nargs="?", type=Path, metavar="FOLDER", help="cases with reference masks")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the CSV and summaries")
    parser.add_argument("--label-map", type=Path, metavar="FILE", help="JSON/YAML naming the reference label values")
    parser.add_argument("--method", choices=["model", "classical"], help="override segmentation.method")
    parser.add_argument("--weights", type=Path, metavar="JSON", help="override segmentation.weights")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override segmentation.device")
    parser.add_argument("--save-masks", action="store_true", help="also write the predicted masks to OUT/masks")
    parser.add_argument(
        "--synthetic-validation", action="store_true", help="evaluate on the synthetic validation set (needs data)"
    )
    parser.add_argument(
        "--real-data-checks",
        action="store_true",
        help="also run the real-CT checks of the model card (CIP lung Dice, lesion-free CTs, LIDC GGO nodule, "
        "MedSeg slices, NSCLC tumours) for the model and the classical baseline; writes OUT/real_data.json",
    )
    parser.add_argument("--data-root", type=Path, metavar="DIR", help="real data sets (default ../shared/data)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.cli.common import check_device, settings_from_args
    from pipeline.cli.train_cmd import default_data_root
    from pipeline.config import override_settings
    from pipeline.errors import ErrorCode, LunglesionError
    from segmentation import segment
    from segmentation.evaluation import evaluate_folder
    from segmentation.labelmap import LabelMap
    from segmentation.segment import segmenter_identity

    update = {"method": args.method, "weights": args.weights, "device": args.device}
    update = {key: value for key, value in update.items() if value}
    settings = override_settings(settings_from_args(args), {"segmentation": update}, source="command line")
    settings = settings.segmentation
    # The device and the model files are checked before any case is built or segmented.
    check_device(settings.device.value, method=settings.method)
    model_id, model_sha256 = segmenter_identity(settings)
    model = {"id": model_id, "sha256": model_sha256, "method": settings.method.value}
    folder = args.folder
    if args.synthetic_validation:
        from segmentation.training.validation import build_validation_set

        data_root = args.data_root or default_data_root()
        if data_root is None:
            raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, "--synthetic-validation needs --data-root")
        folder = build_validation_set(
            data_root=data_root,
            cache_dir=Path(settings.training.cache_dir).expanduser(),
            background=settings.training.holdout_background,
            targets=settings.training.targets,
        )
    if args.real_data_checks:
        run_real_data(args, settings)
        if folder is None:
            return int(ExitCode.OK)
    if folder is None:
        raise LunglesionError(
            ErrorCode.INPUT_NOT_FOUND, "give a FOLDER of cases, --synthetic-validation or --real-data-checks"
        )
    if not folder.is_dir():
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"{folder} is not a folder")
    label_map = LabelMap.read(args.label_map) if args.label_map else None

    def segmenter(image):
        return segment(image, settings=settings)

    output = evaluate_folder(
        folder,
        args.out,
        segmenter=segmenter,
        label_map=label_map,
        save_masks=args.save_masks,
        title=f"lunglesion evaluation ({settings.method.value}) of {folder.name}",
        model=model,
    )
    print(output.summary_md.read_text(encoding="utf-8"), end="")
    print(f"per-case results: {output.csv_path}")
    return int(ExitCode.OK if output.summary["failed"] == 0 else ExitCode.SOME_FAILED)


def run_real_data(args: argparse.Namespace, settings) -> None:
    """The model card's real-CT checks, model and classical baseline side by side."""
    import json

    from pipeline.cli.train_cmd import default_data_root
    from pipeline.errors import ErrorCode, LunglesionError
    from pipeline.io.atomic import write_text_atomic
    from segmentation import segment
    from segmentation.realdata import run_real_data_checks
    from segmentation.settings import SegmentationMethod

    data_root = args.data_root or default_data_root()
    if data_root is None:
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, "--real-data-checks needs --data-root")
    # min_lung_volume_ml 0: single MedSeg slices hold less lung than a volume; report, do not refuse.
    model = settings.model_copy(update={"method": SegmentationMethod.MODEL, "min_lung_volume_ml": 0.0})
    classical = settings.model_copy(update={"method": SegmentationMethod.CLASSICAL, "min_lung_volume_ml": 0.0})
    results = run_real_data_checks(
        data_root,
        {
            "model": lambda image: segment(image, settings=model),
            "classical": lambda image: segment(image, settings=classical),
        },
    )
    path = args.out / "real_data.json"
    write_text_atomic(path, json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True, default=float))
    print(f"real-data checks: {path}")
