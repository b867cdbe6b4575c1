"""Scoring against reference masks and the evaluate command."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.cli.main import main
from pipeline.errors import LunglesionError
from segmentation.evaluation import CSV_COLUMNS, compare, dice, summarise, summary_markdown
from segmentation.labelmap import LabelMap, Meaning, find_cases, read_reference
from segmentation.result import LungSegmentation
from segmentation.synth.phantom import make_phantom


def _seg(lungs: np.ndarray, lesions: np.ndarray) -> LungSegmentation:
    return LungSegmentation(
        sitk.GetImageFromArray(lungs.astype(np.uint8)), sitk.GetImageFromArray(lesions.astype(np.uint8)), "m", ""
    )


def test_dice_values():
    a = np.zeros(10, bool)
    b = np.zeros(10, bool)
    assert math.isnan(dice(a, b))
    a[:4] = True
    b[2:6] = True
    assert dice(a, b) == pytest.approx(0.5)


def test_compare_exact_numbers():
    ref_lungs = np.zeros((2, 4, 10), np.uint8)
    ref_lungs[:, :, :5] = 1
    ref_lungs[:, :, 5:] = 2
    ref_lesions = np.zeros_like(ref_lungs)
    ref_lesions[:, :2, :2] = 1  # 8 voxels GGO
    pred_lungs = ref_lungs.copy()
    pred_lungs[:, :, 4] = 2  # one column of the right lung called left
    pred_lesions = np.zeros_like(ref_lungs)
    pred_lesions[:, :2, :1] = 1  # 4 of the 8
    row = compare(_seg(pred_lungs, pred_lesions), ref_lungs, ref_lesions, voxel_ml=0.5)
    assert row["dice_right_lung"] == pytest.approx(2 * 32 / (32 + 40))
    assert row["dice_left_lung"] == pytest.approx(2 * 40 / (48 + 40))
    assert row["dice_lungs"] == 1.0
    assert row["dice_lesion"] == pytest.approx(2 * 4 / 12)
    assert math.isnan(row["dice_consolidation"])
    assert row["lesion_fraction_ref_pct"] == pytest.approx(10.0)
    assert row["lesion_fraction_pred_pct"] == pytest.approx(5.0)
    assert row["lesion_fraction_error_pp"] == pytest.approx(-5.0)
    assert row["lung_ml_ref"] == pytest.approx(40.0)


def test_compare_splits_the_lesion_volume_error_by_where_it_lies():
    ref_lungs = np.zeros((2, 4, 10), np.uint8)
    ref_lungs[:, :, :5] = 1
    ref_lungs[:, :, 5:] = 2
    ref_lesions = np.zeros_like(ref_lungs)
    ref_lesions[:, :, 0] = 2  # 8 voxels of consolidation at the right lung's outer edge
    ref_lesions[:, :, 1] = 1  # 8 voxels of GGO next to it
    pred_lungs = ref_lungs.copy()
    pred_lungs[:, :, 0] = 0  # the consolidated edge is cut out of the predicted lung
    pred_lesions = np.zeros_like(ref_lungs)
    pred_lesions[:, 2:, 1] = 1  # half of the GGO found (4 voxels), 4 missed inside the lung
    pred_lesions[:, 0, 7] = 1  # 2 voxels of false lesion on normal left lung
    outside = np.zeros((2, 4, 11), np.uint8)  # one extra column outside the reference lung
    outside[:, :, :10] = pred_lungs
    outside[:, :, 10] = 2
    lesions_wide = np.zeros_like(outside)
    lesions_wide[:, :, :10] = pred_lesions
    lesions_wide[:, 1, 10] = 1  # 2 voxels of false lesion outside the reference lung
    ref_lungs_wide = np.zeros_like(outside)
    ref_lungs_wide[:, :, :10] = ref_lungs
    ref_lesions_wide = np.zeros_like(outside)
    ref_lesions_wide[:, :, :10] = ref_lesions
    row = compare(_seg(outside, lesions_wide), ref_lungs_wide, ref_lesions_wide, voxel_ml=0.5)
    assert row["lesion_ml_ref_outside_pred_lung"] == pytest.approx(4.0)  # 8 voxels
    assert row["lesion_ml_missed_in_pred_lung"] == pytest.approx(2.0)  # 4 voxels
    assert row["lesion_ml_false_in_ref_lung"] == pytest.approx(1.0)
    assert row["lesion_ml_false_outside_ref_lung"] == pytest.approx(1.0)
    parts = (
        row["lesion_ml_ref"]
        - row["lesion_ml_ref_outside_pred_lung"]
        - row["lesion_ml_missed_in_pred_lung"]
        + row["lesion_ml_false_in_ref_lung"]
        + row["lesion_ml_false_outside_ref_lung"]
    )
    assert parts == pytest.approx(row["lesion_ml_pred"])
    assert row["lesion_ml_pred"] == pytest.approx(4.0)


def test_compare_leaves_the_ignore_mask_out():
    ref_lungs = np.zeros((2, 4, 10), np.uint8)
    ref_lungs[:, :, :5] = 1
    ref_lungs[:, :, 5:] = 2
    ref_lesions = np.zeros_like(ref_lungs)  # a "lesion-free" reference ...
    pred_lesions = np.zeros_like(ref_lungs)
    pred_lesions[:, :2, :2] = 1  # ... where the prediction finds 8 voxels of lesion,
    ignore = np.zeros(ref_lungs.shape, bool)
    ignore[:, :2, :2] = True  # all inside a real finding the reference does not describe
    ignore[:, 0, 9] = True  # and 2 more ignored voxels of (correctly predicted) left lung
    plain = compare(_seg(ref_lungs, pred_lesions), ref_lungs, ref_lesions, voxel_ml=0.5)
    row = compare(_seg(ref_lungs, pred_lesions), ref_lungs, ref_lesions, voxel_ml=0.5, ignore=ignore)
    assert plain["lesion_fraction_pred_pct"] == pytest.approx(10.0)
    assert row["lesion_fraction_pred_pct"] == 0.0
    assert row["lesion_ml_pred"] == 0.0
    assert row["lung_ml_ref"] == pytest.approx(35.0)  # 70 of 80 voxels scored
    assert row["ignored_ml"] == pytest.approx(5.0)
    assert row["lesion_ml_pred_ignored"] == pytest.approx(4.0)
    assert row["lesion_fraction_pred_all_pct"] == pytest.approx(10.0)  # what was left out stays visible
    assert plain["ignored_ml"] == 0.0 and plain["lesion_ml_pred_ignored"] == 0.0


def test_summary_checks():
    rows = [
        {
            "case": "a",
            "status": "ok",
            "dice_right_lung": 0.98,
            "dice_left_lung": 0.99,
            "dice_lesion": 0.85,
            "lesion_fraction_ref_pct": 10.0,
            "lesion_fraction_pred_pct": 11.0,
            "lesion_fraction_error_pp": 1.0,
            "dice_consolidation": 0.75,
            "consolidation_fraction_ref_pct": 2.0,
        },
        {
            "case": "b",
            "status": "ok",
            "dice_right_lung": 0.96,
            "dice_left_lung": 0.99,
            "dice_lesion": math.nan,
            "lesion_fraction_ref_pct": 0.0,
            "lesion_fraction_pred_pct": 0.7,
            "lesion_fraction_error_pp": 0.7,
        },
        {"case": "c", "status": "NO_LUNG_FOUND"},
    ]
    summary = summarise(rows)
    assert summary["failed"] == 1
    assert summary["checks"]["lung_dice_right"]["pass"] is False
    assert summary["checks"]["lung_dice_left"]["pass"] is True
    assert summary["checks"]["lesion_dice"]["n"] == 1 and summary["checks"]["lesion_dice"]["pass"]
    assert summary["checks"]["healthy_false_positives"]["worst"] == pytest.approx(0.7)
    assert summary["checks"]["healthy_false_positives"]["pass"] is False


def test_summary_shows_every_check_even_without_a_case_and_names_the_model():
    """A check no case can test is listed as such (not silently left out); rules with a ``|`` stay
    inside their Markdown cell; the segmenter's id and SHA-256 are recorded."""
    rows = [
        {
            "case": "a",
            "status": "ok",
            "dice_right_lung": 0.98,
            "dice_left_lung": 0.99,
            "lesion_fraction_ref_pct": 1.0,
            "lesion_fraction_pred_pct": 1.5,
            "lesion_fraction_error_pp": 0.5,
        }
    ]
    summary = summarise(rows)
    assert summary["checks"]["lesion_dice"] == {
        "rule": summary["checks"]["lesion_dice"]["rule"],
        "n": 0,
        "worst": None,
        "pass": None,
    }
    summary["model"] = {"id": "m1", "sha256": "abc", "method": "model"}
    text = summary_markdown(summary, title="t")
    assert "| lesion_dice | >= 0.8 where the lesion fraction is >= 5.0 % | 0 | - | no case to check |" in text
    assert "| lesion_fraction_error | \\|error\\| <= 2.0 percentage points every case | 1 | 0.5000 | yes |" in text
    assert "Segmenter: m1 (model; weights SHA-256 abc)" in text
    assert len(summary["checks"]) == 6


def test_label_map_reading(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("right_lung: 1\nleft_lung: [2]\nggo: [3, 5]\nconsolidation: 4\n")
    label_map = LabelMap.read(path)
    assert label_map.values[Meaning.GGO] == (3, 5) and label_map.values[Meaning.RIGHT_LUNG] == (1,)
    path.write_text("lungs: 1\n")
    with pytest.raises(LunglesionError, match="unknown name 'lungs'"):
        LabelMap.read(path)
    path.write_text("ggo: [1.5]\n")
    with pytest.raises(LunglesionError, match="integer"):
        LabelMap.read(path)


def _write_case(folder, name, phantom, *, single_label=False):
    image = phantom.image()
    sitk.WriteImage(image, str(folder / f"{name}_ct.nii.gz"))
    lungs = phantom.lung_image()
    if single_label:
        array = sitk.GetArrayFromImage(lungs) * 10  # 10 right, 20 left
        label = sitk.GetImageFromArray(array.astype(np.uint8))
        label.CopyInformation(lungs)
        sitk.WriteImage(label, str(folder / f"{name}_label.nii.gz"))
        return
    sitk.WriteImage(lungs, str(folder / f"{name}_lungs.nii.gz"))
    empty = sitk.Image(lungs.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(lungs)
    sitk.WriteImage(empty, str(folder / f"{name}_lesions.nii.gz"))


def test_evaluate_command_with_the_classical_baseline(tmp_path, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    _write_case(cases, "p1", make_phantom(seed=1))
    _write_case(cases, "p2", make_phantom(seed=2, touching=True))
    out = tmp_path / "out"
    code = main(["evaluate", str(cases), "--out", str(out), "--method", "classical", "--log-level", "WARNING"])
    assert code == 0
    with open(out / "evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["p1", "p2"]
    assert list(rows[0].keys()) == list(CSV_COLUMNS)
    assert all(float(r["dice_right_lung"]) > 0.98 and float(r["dice_left_lung"]) > 0.98 for r in rows)
    assert all(float(r["lesion_fraction_ref_pct"]) == 0.0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 2 and summary["failed"] == 0
    assert "lung_dice_right" in (out / "summary.md").read_text()


def test_evaluate_with_a_label_map(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    _write_case(cases, "p1", make_phantom(seed=3), single_label=True)
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"right_lung": 10, "left_lung": 20}))
    out = tmp_path / "out"
    assert (
        main(["evaluate", str(cases), "--out", str(out), "--method", "classical", "--label-map", str(label_map)]) == 0
    )
    # no map: refused before any case is segmented (every case would fail the same way)
    assert main(["evaluate", str(cases), "--out", str(out / "nomap"), "--method", "classical"]) == 2
    assert not (out / "nomap" / "evaluation.csv").exists()


def test_an_ignore_file_is_honoured(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    phantom = make_phantom(seed=4)
    _write_case(cases, "p1", phantom)
    lungs = phantom.lung_image()
    right = sitk.GetArrayFromImage(lungs) == 1
    ignore = sitk.GetImageFromArray(right.astype(np.uint8))  # leave the whole right lung out
    ignore.CopyInformation(lungs)
    sitk.WriteImage(ignore, str(cases / "p1_ignore.nii.gz"))
    (case,) = find_cases(cases)
    assert case.ignore is not None and case.ignore.name == "p1_ignore.nii.gz"
    _, _, mask = read_reference(case, None)
    assert np.array_equal(mask, right)
    out = tmp_path / "out"
    assert main(["evaluate", str(cases), "--out", str(out), "--method", "classical", "--log-level", "WARNING"]) == 0
    with open(out / "evaluation.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    # Nothing of the right lung is scored: what is left is the classical mask's rim outside the phantom's.
    assert float(row["right_lung_ml_ref"]) == 0.0 and float(row["left_lung_ml_ref"]) > 0.0
    assert float(row["right_lung_ml_pred"]) < 0.05 * float(row["left_lung_ml_pred"])
    voxel_ml = float(np.prod(lungs.GetSpacing())) / 1000
    assert float(row["ignored_ml"]) >= right.sum() * voxel_ml - 1e-3


def test_an_ignore_file_of_another_shape_fails_the_case(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    _write_case(cases, "p1", make_phantom(seed=5))
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkUInt8), str(cases / "p1_ignore.nii.gz"))
    (case,) = find_cases(cases)
    with pytest.raises(LunglesionError, match="differs"):
        read_reference(case, None)


def test_evaluate_rejects_a_missing_folder(tmp_path):
    assert main(["evaluate", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2


def test_a_runtime_error_while_segmenting_fails_only_its_case(tmp_path):
    """A torch RuntimeError (e.g. out of memory, even with an empty message) is SEGMENTATION_FAILED
    for that case, not "could not be read", and the other cases are still scored."""
    from segmentation.evaluation import evaluate_folder
    from segmentation.segment import segment_classical

    cases = tmp_path / "cases"
    cases.mkdir()
    _write_case(cases, "a", make_phantom(seed=1))
    _write_case(cases, "b", make_phantom(seed=2))
    calls = []

    def segmenter(image):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError()
        return segment_classical(image)

    output = evaluate_folder(cases, tmp_path / "out", segmenter=segmenter)
    rows = {r["case"]: r for r in output.rows}
    assert rows["a"]["status"] == "SEGMENTATION_FAILED"
    assert rows["a"]["error_message"] == "segmentation or scoring failed (RuntimeError)"
    assert rows["b"]["status"] == "ok" and rows["b"]["dice_right_lung"] > 0.98
    assert output.summary["failed"] == 1
