"""``lunglesion evaluate``: per-case Dice, volume and lesion-fraction errors against reference masks.

Outputs (written atomically into the output folder):

* ``evaluation.csv``: one row per case (columns in :data:`CSV_COLUMNS`, fixed float format);
* ``summary.json`` and ``summary.md``: means/medians/worst cases and the acceptance checks
  of the model card (lung Dice >= 0.97 per side, lesion Dice >= 0.80 where the lesion
  fraction is >= 5 %, lesion-fraction error <= 2 percentage points, false positives on
  lesion-free lungs <= 0.5 % of lung volume, consolidation Dice >= 0.70 where present).

A Dice is empty (not a number) when both the reference and the prediction are empty.
``status`` is ``ok``, or the error code of a case that could not be scored (its other cells
empty, ``error_message`` says why); the other cases are scored all the same. ``summary.json``
names the segmenter (``model``: id, SHA-256 of the weights, method).

Voxels of a case's ignore mask (``<case>_ignore`` file, or the label map's ``ignore`` values)
are left out of every score. Three columns say what that left out: ``ignored_ml`` (ignored
voxels in the reference or predicted lungs), ``lesion_ml_pred_ignored`` (predicted lesion
there) and ``lesion_fraction_pred_all_pct`` (the predicted lesion fraction over all predicted
lung, ignored voxels included).

Four more columns split the lesion volume error by where it lies (``lesion_ml_pred`` =
``lesion_ml_ref`` - ``lesion_ml_ref_outside_pred_lung`` - ``lesion_ml_missed_in_pred_lung`` +
``lesion_ml_false_in_ref_lung`` + ``lesion_ml_false_outside_ref_lung``, exactly): reference
lesion lost with the lung boundary (the predicted lung leaves it out), reference lesion inside
the predicted lung that is not called lesion, predicted lesion on lung the reference calls
normal, and predicted lesion outside the reference lung.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.errors import ErrorCode, LunglesionError
from pipeline.io.atomic import write_text_atomic
from segmentation.labelmap import LabelMap, ReferenceCase, find_cases, read_reference
from segmentation.result import LesionLabel, LungLabel, LungSegmentation

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "case",
    "status",
    "seconds",
    "dice_right_lung",
    "dice_left_lung",
    "dice_lungs",
    "dice_lesion",
    "dice_ggo",
    "dice_consolidation",
    "lung_ml_ref",
    "lung_ml_pred",
    "lung_volume_error_pct",
    "right_lung_ml_ref",
    "right_lung_ml_pred",
    "left_lung_ml_ref",
    "left_lung_ml_pred",
    "lesion_ml_ref",
    "lesion_ml_pred",
    "lesion_fraction_ref_pct",
    "lesion_fraction_pred_pct",
    "lesion_fraction_error_pp",
    "ggo_fraction_ref_pct",
    "ggo_fraction_pred_pct",
    "consolidation_fraction_ref_pct",
    "consolidation_fraction_pred_pct",
    "ignored_ml",
    "lesion_ml_pred_ignored",
    "lesion_fraction_pred_all_pct",
    "lesion_ml_ref_outside_pred_lung",
    "lesion_ml_missed_in_pred_lung",
    "lesion_ml_false_in_ref_lung",
    "lesion_ml_false_outside_ref_lung",
    "error_message",
)

#: Acceptance thresholds of the model card.
LUNG_DICE_MIN = 0.97
LESION_DICE_MIN = 0.80
LESION_DICE_MIN_FRACTION = 5.0
FRACTION_ERROR_MAX_PP = 2.0
HEALTHY_FP_MAX_PCT = 0.5
CONSOLIDATION_DICE_MIN = 0.70


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean arrays; NaN when both are empty."""
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return math.nan
    return 2.0 * int(np.count_nonzero(a & b)) / total


def compare(
    prediction: LungSegmentation,
    ref_lungs: np.ndarray | None,
    ref_lesions: np.ndarray | None,
    *,
    voxel_ml: float,
    ignore: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of one case (arrays in SimpleITK (z, y, x) order on the prediction's grid)."""
    lungs = sitk.GetArrayViewFromImage(prediction.lungs)
    lesions = sitk.GetArrayViewFromImage(prediction.lesions)
    valid = np.ones(lungs.shape, bool) if ignore is None else ~ignore
    row: dict[str, float] = {}
    pred_lung = (lungs > 0) & valid
    row["lung_ml_pred"] = pred_lung.sum() * voxel_ml
    row["right_lung_ml_pred"] = ((lungs == LungLabel.RIGHT_LUNG) & valid).sum() * voxel_ml
    row["left_lung_ml_pred"] = ((lungs == LungLabel.LEFT_LUNG) & valid).sum() * voxel_ml
    pred_lesion = (lesions > 0) & valid
    row["lesion_ml_pred"] = pred_lesion.sum() * voxel_ml
    ignored = ~valid
    any_lung = (lungs > 0) if ref_lungs is None else (lungs > 0) | (ref_lungs > 0)
    row["ignored_ml"] = float((ignored & any_lung).sum()) * voxel_ml
    row["lesion_ml_pred_ignored"] = float(((lesions > 0) & ignored).sum()) * voxel_ml
    row["lesion_fraction_pred_all_pct"] = 100.0 * int(np.count_nonzero(lesions)) / max(1, int(np.count_nonzero(lungs)))
    pred_lung_n = max(1, int(pred_lung.sum()))
    row["lesion_fraction_pred_pct"] = 100.0 * pred_lesion.sum() / pred_lung_n
    row["ggo_fraction_pred_pct"] = 100.0 * ((lesions == LesionLabel.GGO) & valid).sum() / pred_lung_n
    row["consolidation_fraction_pred_pct"] = (
        100.0 * ((lesions == LesionLabel.CONSOLIDATION) & valid).sum() / pred_lung_n
    )
    ref_lung_n = None
    if ref_lungs is not None:
        ref_lung = (ref_lungs > 0) & valid
        ref_lung_n = max(1, int(ref_lung.sum()))
        row["dice_right_lung"] = dice((lungs == 1) & valid, (ref_lungs == 1) & valid)
        row["dice_left_lung"] = dice((lungs == 2) & valid, (ref_lungs == 2) & valid)
        row["dice_lungs"] = dice(pred_lung, ref_lung)
        row["lung_ml_ref"] = ref_lung.sum() * voxel_ml
        row["right_lung_ml_ref"] = ((ref_lungs == 1) & valid).sum() * voxel_ml
        row["left_lung_ml_ref"] = ((ref_lungs == 2) & valid).sum() * voxel_ml
        row["lung_volume_error_pct"] = (
            100.0 * (row["lung_ml_pred"] - row["lung_ml_ref"]) / max(row["lung_ml_ref"], 1e-9)
        )
    if ref_lesions is not None:
        ref_lesion = (ref_lesions > 0) & valid
        row["dice_lesion"] = dice(pred_lesion, ref_lesion)
        row["dice_ggo"] = dice((lesions == 1) & valid, (ref_lesions == 1) & valid)
        row["dice_consolidation"] = dice((lesions == 2) & valid, (ref_lesions == 2) & valid)
        row["lesion_ml_ref"] = ref_lesion.sum() * voxel_ml
        if ref_lung_n is not None:
            row["lesion_fraction_ref_pct"] = 100.0 * ref_lesion.sum() / ref_lung_n
            row["ggo_fraction_ref_pct"] = 100.0 * ((ref_lesions == 1) & valid).sum() / ref_lung_n
            row["consolidation_fraction_ref_pct"] = 100.0 * ((ref_lesions == 2) & valid).sum() / ref_lung_n
            row["lesion_fraction_error_pp"] = row["lesion_fraction_pred_pct"] - row["lesion_fraction_ref_pct"]
            row.update(_lesion_error_parts(pred_lung, pred_lesion, ref_lung, ref_lesion, voxel_ml=voxel_ml))
    return row


def _lesion_error_parts(
    pred_lung: np.ndarray, pred_lesion: np.ndarray, ref_lung: np.ndarray, ref_lesion: np.ndarray, *, voxel_ml: float
) -> dict[str, float]:
    """Where the lesion volume error lies (scored voxels only; see the module docstring)."""
    missed = ref_lesion & ~pred_lesion
    false = pred_lesion & ~ref_lesion
    return {
        "lesion_ml_ref_outside_pred_lung": float(np.count_nonzero(missed & ~pred_lung)) * voxel_ml,
        "lesion_ml_missed_in_pred_lung": float(np.count_nonzero(missed & pred_lung)) * voxel_ml,
        "lesion_ml_false_in_ref_lung": float(np.count_nonzero(false & ref_lung)) * voxel_ml,
        "lesion_ml_false_outside_ref_lung": float(np.count_nonzero(false & ~ref_lung)) * voxel_ml,
    }


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def rows_to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_fmt(row.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


def _values(rows, key, where=lambda r: True) -> list[float]:
    out = []
    for row in rows:
        value = row.get(key)
        if isinstance(value, float) and not math.isnan(value) and where(row):
            out.append(value)
    return out


def summarise(rows: list[dict]) -> dict:
    """Aggregate metrics and acceptance checks (only over rows that ran)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    summary: dict = {"cases": len(rows), "failed": len(rows) - len(ok), "metrics": {}, "checks": {}}
    for key in CSV_COLUMNS[3:]:
        values = _values(ok, key)
        if values:
            summary["metrics"][key] = {
                "n": len(values),
                "mean": float(np.mean(values)),
                "median": float(np.median(values)),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }

    def check(
        name: str, values: list[float], *, rule: str, at_least: float | None = None, at_most: float | None = None
    ):
        """The worst case against a lower (``at_least``) or upper (``at_most``) bound; n = 0: not checked."""
        worst = float(min(values) if at_least is not None else max(values)) if values else None
        passed = None if worst is None else bool(worst >= at_least if at_least is not None else worst <= at_most)
        summary["checks"][name] = {"rule": rule, "n": len(values), "worst": worst, "pass": passed}

    for side in ("right", "left"):
        values = _values(ok, f"dice_{side}_lung")
        check(f"lung_dice_{side}", values, at_least=LUNG_DICE_MIN, rule=f">= {LUNG_DICE_MIN} every case")
    big = lambda r: r.get("lesion_fraction_ref_pct", 0.0) >= LESION_DICE_MIN_FRACTION  # noqa: E731
    check(
        "lesion_dice",
        _values(ok, "dice_lesion", big),
        at_least=LESION_DICE_MIN,
        rule=f">= {LESION_DICE_MIN} where the lesion fraction is >= {LESION_DICE_MIN_FRACTION} %",
    )
    check(
        "lesion_fraction_error",
        [abs(v) for v in _values(ok, "lesion_fraction_error_pp")],
        at_most=FRACTION_ERROR_MAX_PP,
        rule=f"|error| <= {FRACTION_ERROR_MAX_PP} percentage points every case",
    )
    healthy = lambda r: r.get("lesion_fraction_ref_pct", 1.0) == 0.0  # noqa: E731
    check(
        "healthy_false_positives",
        _values(ok, "lesion_fraction_pred_pct", healthy),
        at_most=HEALTHY_FP_MAX_PCT,
        rule=f"<= {HEALTHY_FP_MAX_PCT} % of lung on lesion-free cases",
    )
    present = lambda r: r.get("consolidation_fraction_ref_pct", 0.0) > 0.0  # noqa: E731
    check(
        "consolidation_dice",
        _values(ok, "dice_consolidation", present),
        at_least=CONSOLIDATION_DICE_MIN,
        rule=f">= {CONSOLIDATION_DICE_MIN} where consolidation is present",
    )
    return summary


def _cell(text: object) -> str:
    """Text for a Markdown table cell (a ``|`` in it would end the cell)."""
    return str(text).replace("|", "\\|")


def summary_markdown(summary: dict, *, title: str) -> str:
    lines = [f"# {title}", ""]
    model = summary.get("model")
    if model:
        lines += [f"Segmenter: {model['id']} ({model['method']}; weights SHA-256 {model['sha256'] or '-'})", ""]
    lines += [f"Cases: {summary['cases']} (failed: {summary['failed']})", ""]
    lines += ["| check | rule | n | worst | pass |", "|---|---|---|---|---|"]
    for name, item in summary["checks"].items():
        if item["n"] == 0:
            worst, verdict = "-", "no case to check"
        else:
            worst, verdict = f"{item['worst']:.4f}", "yes" if item["pass"] else "NO"
        lines.append(f"| {name} | {_cell(item['rule'])} | {item['n']} | {worst} | {verdict} |")
    lines += ["", "| metric | n | mean | median | min | max |", "|---|---|---|---|---|---|"]
    for name, m in summary["metrics"].items():
        lines.append(f"| {name} | {m['n']} | {m['mean']:.4f} | {m['median']:.4f} | {m['min']:.4f} | {m['max']:.4f} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EvaluationOutput:
    csv_path: Path
    summary_json: Path
    summary_md: Path
    rows: list[dict]
    summary: dict


def evaluate_folder(
    folder: Path,
    out_dir: Path,
    *,
    segmenter,
    label_map: LabelMap | None = None,
    save_masks: bool = False,
    title: str = "lunglesion evaluation",
    model: dict | None = None,
) -> EvaluationOutput:
    """Segment every case of ``folder`` with ``segmenter(image) -> LungSegmentation`` and score it.

    ``model`` (``id``, ``sha256``, ``method``) names the segmenter in ``summary.json`` and ``summary.md``.
    """
    cases: list[ReferenceCase] = find_cases(folder)
    if not cases:
        raise LunglesionError(
            ErrorCode.INPUT_NOT_FOUND,
            f"no image/reference pairs found in {folder} (see 'lunglesion evaluate --help' for the layouts)",
        )
    unmapped = [case.name for case in cases if case.label is not None and label_map is None]
    if unmapped:
        raise LunglesionError(
            ErrorCode.CONFIG_INVALID,
            f"{len(unmapped)} case(s) have a single label file ({', '.join(unmapped[:3])}"
            f"{', ...' if len(unmapped) > 3 else ''}): give --label-map to say what its values mean",
        )
    rows: list[dict] = []
    for case in cases:
        row: dict = {"case": case.name}
        reading = True
        try:
            image = sitk.ReadImage(str(case.image))
            ref_lungs, ref_lesions, ignore = read_reference(case, label_map, grid=image)
            reading = False
            start = time.perf_counter()
            prediction = segmenter(image)
            row["seconds"] = time.perf_counter() - start
            voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
            row.update(compare(prediction, ref_lungs, ref_lesions, voxel_ml=voxel_ml, ignore=ignore))
            row["status"] = "ok"
            if save_masks:
                from pipeline.io.atomic import atomic_path

                for suffix, img in (("lungs", prediction.lungs), ("lesions", prediction.lesions)):
                    with atomic_path(Path(out_dir) / "masks" / f"{case.name}_{suffix}.nii.gz") as tmp:
                        sitk.WriteImage(img, str(tmp), useCompression=True)
        except LunglesionError as exc:
            row.update(status=exc.code.value, error_message=exc.message)
            log.warning("case %s failed [%s]: %s", case.name, exc.code.value, exc.message)
        except RuntimeError as exc:  # SimpleITK read errors; torch errors (e.g. out of memory) later on
            lines = str(exc).strip().splitlines()
            detail = lines[-1][:200] if lines else type(exc).__name__
            if reading:
                code, message = (
                    ErrorCode.VOLUME_FILE_UNREADABLE,
                    f"the image or a label file could not be read ({detail})",
                )
            else:
                code, message = ErrorCode.SEGMENTATION_FAILED, f"segmentation or scoring failed ({detail})"
            row.update(status=code.value, error_message=message)
            log.warning("case %s failed [%s]: %s", case.name, code.value, message)
        except Exception as exc:  # noqa: BLE001 - one odd case must not lose the others' scores
            row.update(status=ErrorCode.INTERNAL_ERROR.value, error_message=f"unexpected {type(exc).__name__}")
            log.exception("case %s: unexpected %s", case.name, type(exc).__name__)
        rows.append(row)
        if row["status"] != "ok":
            continue
        log.info(
            "%s: lung Dice R %s L %s, lesion Dice %s, fraction error %s pp",
            case.name,
            _fmt(row.get("dice_right_lung")),
            _fmt(row.get("dice_left_lung")),
            _fmt(row.get("dice_lesion")),
            _fmt(row.get("lesion_fraction_error_pp")),
        )
    rows.sort(key=lambda r: r["case"])
    summary = summarise(rows)
    if model is not None:
        summary["model"] = dict(model)
    out_dir = Path(out_dir)
    csv_path = out_dir / "evaluation.csv"
    write_text_atomic(csv_path, rows_to_csv(rows))
    json_path = out_dir / "summary.json"
    write_text_atomic(json_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    md_path = out_dir / "summary.md"
    write_text_atomic(md_path, summary_markdown(summary, title=title))
    return EvaluationOutput(csv_path, json_path, md_path, rows, summary)
