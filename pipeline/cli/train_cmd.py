"""``lunglesion train``: reproduce the shipped segmentation model, or fine-tune it on your own labels."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.exit_codes import ExitCode

log = logging.getLogger(__name__)

DESCRIPTION = """\
Without --labels-dir: build the synthetic training set (lesions rendered into the real chest CT
backgrounds of --data-root, default ../shared/data next to the repository), train the network
with the configured seed (segmentation.training in the configuration) and write
<model-id>.pt + <model-id>.json into --out: from scratch, or, with --weights, continuing from
that model (the later stages of the shipped recipe, configs/train-stage2.yaml to
configs/train-stage4.yaml). On the reference machine stages 2 to 4 reproduced their shipped
weights bit for bit from the stage before; a rerun of stage 1 gave weights of about the same
quality but other bits (segmentation/MODEL_CARD.md gives the commands, their times and this
check); the final line says whether the SHA-256 matches the shipped weights or one of the
stages they were trained from.

With --labels-dir: fine-tune the shipped model (or --weights) on your own NIfTI image/label pairs
(<case>_ct.nii.gz + <case>_label.nii.gz, or images/<case>.nii.gz + labels/<case>.nii.gz) whose
label values are named by --label-map (JSON or YAML: right_lung, left_lung, lung, ggo,
consolidation, ignore). Use the new model with 'segmentation: {weights: OUT/<model-id>.json}'.
Each batch also draws segmentation.training.finetune_synthetic_fraction (default 0.3) of its
slices from the synthetic training set, so that your cases do not make the model forget the
rest: when --data-root (default ../shared/data) exists and that set is not yet in
segmentation.training.cache_dir, it is rendered first (240 cases: about 23 minutes on 2 CPU
cores and several GB of disk, once; lunglesion train reuses it). Set the fraction to 0 to
fine-tune on your cases alone.

Every segmentation.training.checkpoint_every steps (default 500) the whole training state is
saved to <out>/<model-id>.checkpoint.pt. An interrupted run (a killed job, a reboot) is resumed
by the same command with --continue, and ends with the weights the uninterrupted run would have
written; the checkpoint is deleted when the model is written. Without --continue a run refuses
to start over an unfinished one.
"""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        parents=parents,
        help="train the segmentation model (reproduce the shipped weights or fine-tune on your labels)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for <model-id>.pt and .json")
    parser.add_argument(
        "--model-id",
        metavar="ID",
        help="model name (default lunglesion-seg-v1; <base model>-continued with --weights, "
        "<base model>-ft with --labels-dir)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help="real CT data sets: a shared/data folder with its 'open' script, or a folder of unpacked data sets",
    )
    parser.add_argument("--labels-dir", type=Path, metavar="DIR", help="your labelled cases: fine-tune instead")
    parser.add_argument("--label-map", type=Path, metavar="FILE", help="JSON/YAML naming your label values")
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="JSON",
        help="start from this model: the one to fine-tune (default: the shipped one), or, without "
        "--labels-dir, the first stage to continue training on the synthetic set (default: from scratch)",
    )
    parser.add_argument("--steps", type=int, metavar="N", help="override the number of optimisation steps")
    parser.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="resume an interrupted run from <out>/<model-id>.checkpoint.pt (same command and configuration; "
        "starts at step 0 when there is none)",
    )
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="override segmentation.training.cache_dir")
    parser.set_defaults(func=run)


def default_data_root() -> Path | None:
    """``../shared/data`` next to the repository checkout, when it exists."""
    candidate = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def run(args: argparse.Namespace) -> int:
    from pipeline.cli.common import settings_from_args
    from pipeline.errors import ErrorCode, LunglesionError
    from segmentation.weights import read_description

    settings = settings_from_args(args).segmentation
    training = settings.training
    if args.cache_dir is not None:
        training = training.model_copy(update={"cache_dir": args.cache_dir})
    data_root = args.data_root or default_data_root()
    if args.data_root is not None and not args.data_root.is_dir():
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"--data-root {args.data_root} is not a folder")
    if args.steps is not None and args.steps < 1:
        raise LunglesionError(ErrorCode.CONFIG_INVALID, "--steps must be at least 1")

    if args.labels_dir is not None:
        from segmentation.labelmap import LabelMap
        from segmentation.training.finetune import finetune

        label_map = LabelMap.read(args.label_map) if args.label_map else None
        base = args.weights or settings.weights
        model_id = args.model_id or f"{read_description(base).model_id}-ft"
        json_path = finetune(
            labels_dir=args.labels_dir,
            label_map=label_map,
            base_weights=base,
            output_dir=args.out,
            model_id=model_id,
            settings=training,
            data_root=data_root,
            steps=args.steps,
            resume=args.resume,
        )
        print(f"fine-tuned model written: {json_path}")
        return int(ExitCode.OK)

    if data_root is None:
        raise LunglesionError(
            ErrorCode.INPUT_NOT_FOUND,
            "no training data: pass --data-root (a shared/data folder or a folder of unpacked data sets)",
        )
    from segmentation.training.run import train_default_model

    if args.weights is not None:
        base = read_description(args.weights)
        model_id = args.model_id or f"{base.model_id}-continued"
        if (args.out / f"{model_id}.pt").resolve() == base.weights_path.resolve():
            raise LunglesionError(
                ErrorCode.CONFIG_INVALID,
                f"--out and --model-id would overwrite the starting model {base.weights_path}; choose another",
            )
    else:
        model_id = args.model_id or "lunglesion-seg-v1"
    outcome = train_default_model(
        data_root=data_root,
        output_dir=args.out,
        model_id=model_id,
        settings=training,
        inference=settings,
        steps=args.steps,
        init_from=args.weights,
        resume=args.resume,
    )
    new = read_description(outcome.model_json)
    print(f"model written: {outcome.model_json} ({outcome.seconds / 60:.1f} min)")
    print(shipped_comparison(new))
    return int(ExitCode.OK)


def shipped_comparison(new) -> str:
    """:func:`reproduction_line` against the installed model, or why it cannot be made.

    The new model is already written when this runs, so an installation whose shipped model
    cannot be read (moved, deleted) must not turn a finished training into a failed command.
    """
    from pipeline.errors import SegmentationError
    from segmentation.weights import read_description

    try:
        shipped = read_description(None)
    except SegmentationError as error:
        return f"sha256 {new.sha256}; not compared with the shipped model, which could not be read: {error}"
    return reproduction_line(new, shipped)


def lineage(metadata: dict) -> list[dict]:
    """The stages a model was trained from, latest first (``training.from``, nested)."""
    stages = []
    origin = metadata.get("training", {}).get("from")
    while isinstance(origin, dict):
        stages.append(origin)
        origin = origin.get("from")
    return stages


def reproduction_line(new, shipped) -> str:
    """Whether ``new`` has the shipped model's weights, or those of one of the stages it was trained from.

    A model named like one of those stages but with other weights is said to differ from that stage
    (a rerun whose bits differ), not only from the shipped model.
    """
    if new.sha256 == shipped.sha256:
        return f"sha256 {new.sha256} is identical to the shipped {shipped.model_id}"
    stages = lineage(shipped.metadata)
    numbered = list(zip(range(len(stages), 0, -1), stages, strict=True))  # stage 1 is the last one
    for number, stage in numbered:
        if new.sha256 == stage.get("sha256"):
            return (
                f"sha256 {new.sha256} is identical to {stage.get('model_id')}, stage {number} of the shipped "
                f"{shipped.model_id}: continue with --config configs/train-stage{number + 1}.yaml "
                f"--weights {new.weights_path.with_suffix('.json')}"
            )
    for number, stage in numbered:
        if new.model_id == stage.get("model_id"):
            return (
                f"sha256 {new.sha256} is different from {stage.get('model_id')}, stage {number} of the shipped "
                f"{shipped.model_id} ({stage.get('sha256')}): a rerun can give other bits even on the reference "
                "machine (segmentation/MODEL_CARD.md, 'Reproducing')"
            )
    return f"sha256 {new.sha256} is different from the shipped {shipped.model_id} ({shipped.sha256})"
