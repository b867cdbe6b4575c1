"""Users' reference labels and images that cannot be scored or learnt from as they are."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.cli.main import main
from pipeline.errors import ErrorCode, LunglesionError, SegmentationError
from segmentation import segment
from segmentation.labelmap import LabelMap, find_cases, read_reference
from segmentation.synth.phantom import make_phantom


def _case(folder, name, phantom, *, lungs: sitk.Image | None = None):
    sitk.WriteImage(phantom.image(), str(folder / f"{name}_ct.nii.gz"))
    sitk.WriteImage(lungs if lungs is not None else phantom.lung_image(), str(folder / f"{name}_lungs.nii.gz"))


def test_a_flipped_label_is_refused_not_scored_against_the_wrong_side(tmp_path):
    phantom = make_phantom(seed=11)
    # The same voxels in space, stored the other way round (another direction matrix): read as
    # an array it puts the right lung where the left one is.
    flipped = sitk.Flip(phantom.lung_image(), [True, False, False])
    _case(tmp_path, "p1", phantom, lungs=flipped)
    (case,) = find_cases(tmp_path)
    with pytest.raises(LunglesionError) as caught:
        read_reference(case, None, grid=phantom.image())
    assert caught.value.code is ErrorCode.LABEL_GRID_MISMATCH
    assert "direction" in caught.value.message


def test_a_label_of_another_size_fails_its_case_and_the_others_are_scored(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    good = make_phantom(seed=12)
    _case(cases, "a", good)
    bad = make_phantom(seed=13)
    short = sitk.GetArrayFromImage(bad.lung_image())[:-1]  # one slice fewer than the CT
    label = sitk.GetImageFromArray(short)
    label.SetSpacing(bad.lung_image().GetSpacing())
    label.SetOrigin(bad.lung_image().GetOrigin())
    _case(cases, "b", bad, lungs=label)
    out = tmp_path / "out"
    code = main(["evaluate", str(cases), "--out", str(out), "--method", "classical", "--log-level", "ERROR"])
    assert code == 3
    with open(out / "evaluation.csv", newline="") as handle:
        rows = {r["case"]: r for r in csv.DictReader(handle)}
    assert rows["a"]["status"] == "ok" and float(rows["a"]["dice_right_lung"]) > 0.98
    assert rows["b"]["status"] == ErrorCode.LABEL_GRID_MISMATCH.value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"right_lung": 1, "left_lung": 1}', "two meanings"),
        ('{"ggo": [3], "ignore": [3]}', "two meanings"),
        ('{"lung": [], "ggo": []}', "maps no label values"),
    ],
)
def test_contradictory_or_empty_label_maps_are_refused(tmp_path, text, message):
    path = tmp_path / "map.json"
    path.write_text(text)
    with pytest.raises(LunglesionError, match=message) as caught:
        LabelMap.read(path)
    assert caught.value.code is ErrorCode.CONFIG_INVALID


def _user_folder(tmp_path, *, seed: int):
    """A fine-tuning folder holding one CT (``c_ct.nii.gz``); the test writes its label."""
    user = tmp_path / "user"
    user.mkdir()
    phantom = make_phantom(shape=(12, 64, 64), spacing_zyx=(5.0, 3.0, 3.0), seed=seed)
    sitk.WriteImage(phantom.image(), str(user / "c_ct.nii.gz"))
    return user, phantom


def _build_cache(tmp_path, user, label_map):
    from segmentation.training.finetune import build_user_cache
    from segmentation.weights import read_description

    params = read_description(None).preprocessing
    return build_user_cache(user, label_map, cache_dir=tmp_path / "cache", params=params)


def test_fine_tuning_refuses_labels_whose_values_the_map_does_not_name(tmp_path):
    user, phantom = _user_folder(tmp_path, seed=14)
    sitk.WriteImage(phantom.lung_image(), str(user / "c_label.nii.gz"))  # values 1 and 2
    (tmp_path / "map.json").write_text(json.dumps({"right_lung": 5, "left_lung": 6}))
    with pytest.raises(LunglesionError, match="no voxel carries a lung value") as caught:
        _build_cache(tmp_path, user, LabelMap.read(tmp_path / "map.json"))
    assert caught.value.code is ErrorCode.CONFIG_INVALID


def test_fine_tuning_refuses_a_label_off_the_image_grid(tmp_path):
    user, phantom = _user_folder(tmp_path, seed=15)
    narrow = sitk.GetArrayFromImage(phantom.lung_image())[:, :, :-2]
    label = sitk.GetImageFromArray(narrow)
    label.SetSpacing(phantom.image().GetSpacing())
    label.SetOrigin(phantom.image().GetOrigin())
    sitk.WriteImage(label, str(user / "c_lungs.nii.gz"))
    with pytest.raises(LunglesionError) as caught:
        _build_cache(tmp_path, user, None)
    assert caught.value.code is ErrorCode.LABEL_GRID_MISMATCH


def test_segment_refuses_nan_voxels():
    phantom = make_phantom(seed=16)
    array = sitk.GetArrayFromImage(phantom.image()).astype(np.float32)
    array[3, 20, 20] = np.nan
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(phantom.image())
    with pytest.raises(SegmentationError, match="NaN") as caught:
        segment(image, device="cpu")
    assert caught.value.code is ErrorCode.SEGMENTATION_FAILED


def test_segment_says_when_values_are_not_hounsfield_units():
    phantom = make_phantom(seed=17)
    stored = sitk.GetArrayFromImage(phantom.image()).astype(np.int32) + 1024  # raw stored values, not rescaled
    image = sitk.GetImageFromArray(np.clip(stored, 0, 65535).astype(np.uint16))
    image.CopyInformation(phantom.image())
    with pytest.raises(SegmentationError, match="not Hounsfield units") as caught:
        segment(image, device="cpu")
    assert caught.value.code is ErrorCode.NO_LUNG_FOUND


def _with_lesions(phantom):
    """The phantom's lung labels (1 right, 2 left) and lesion labels (1 GGO, 2 consolidation) in both lungs."""
    lungs = sitk.GetArrayFromImage(phantom.lung_image())
    lesions = np.zeros_like(lungs)
    for side, kind in ((1, 1), (2, 2)):
        zs, ys, xs = np.nonzero(lungs == side)
        z, y, x = int(np.median(zs)), int(np.median(ys)), int(np.median(xs))
        block = np.zeros(lungs.shape, bool)
        block[z - 2 : z + 3, y - 6 : y + 7, x - 6 : x + 7] = True
        lesions[block & (lungs == side)] = kind
    return lungs, lesions


def test_lesions_in_one_label_file_are_lung_on_their_own_side(tmp_path):
    """In a single label file a lesion voxel carries its lesion value instead of its lung's:
    read with a sided map it must still be lung (diseased lung is lung), on its own side."""
    phantom = make_phantom(seed=17)
    lungs, lesions = _with_lesions(phantom)
    single = lungs.copy()
    single[lesions == 1] = 3
    single[lesions == 2] = 4
    image = sitk.GetImageFromArray(single)
    image.CopyInformation(phantom.lung_image())
    sitk.WriteImage(phantom.image(), str(tmp_path / "p_ct.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "p_label.nii.gz"))
    (tmp_path / "map.json").write_text(json.dumps({"right_lung": 1, "left_lung": 2, "ggo": 3, "consolidation": 4}))
    (case,) = find_cases(tmp_path)
    got_lungs, got_lesions, _ = read_reference(case, LabelMap.read(tmp_path / "map.json"), grid=phantom.image())
    assert np.count_nonzero(lesions) > 100
    np.testing.assert_array_equal(got_lungs, lungs)
    np.testing.assert_array_equal(got_lesions, lesions)


def test_a_label_whose_values_the_map_does_not_name_fails_its_case_in_evaluate(tmp_path):
    """Not scored as Dice 0 against an empty reference with nonsense volume errors."""
    cases = tmp_path / "cases"
    cases.mkdir()
    phantom = make_phantom(seed=18)
    sitk.WriteImage(phantom.image(), str(cases / "p_ct.nii.gz"))
    sitk.WriteImage(phantom.lung_image(), str(cases / "p_label.nii.gz"))  # values 1 and 2
    (tmp_path / "map.json").write_text(json.dumps({"right_lung": 10, "left_lung": 20}))
    out = tmp_path / "out"
    args = [
        "evaluate",
        str(cases),
        "--out",
        str(out),
        "--method",
        "classical",
        "--label-map",
        str(tmp_path / "map.json"),
    ]
    assert main([*args, "--log-level", "ERROR"]) == 3
    with open(out / "evaluation.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["status"] == ErrorCode.CONFIG_INVALID.value and row["dice_right_lung"] == ""
    assert "no voxel carries a lung value of the label map (values in the file: 0, 1, 2)" in row["error_message"]


def test_evaluate_refuses_missing_weights_before_any_case(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    _case(cases, "p", make_phantom(seed=19))
    out = tmp_path / "out"
    assert main(["evaluate", str(cases), "--out", str(out), "--weights", str(tmp_path / "nosuch.json")]) == 2
    assert not (out / "evaluation.csv").exists()


def test_lesion_voxels_take_the_side_of_the_nearest_lung_voxel_and_stray_ones_stay_out():
    from segmentation.labelmap import _lesions_into_sided_lungs

    lungs = np.zeros((10, 40, 60), np.uint8)
    lungs[2:8, 5:35, 5:27] = 1
    lungs[2:8, 5:35, 33:55] = 2
    lesion = np.zeros(lungs.shape, bool)
    lesion[3:7, 10:20, 20:40] = True  # one lesion region bridging the gap between the lungs
    lungs[lesion] = 0
    lesion[0, 0, 0] = True  # a stray voxel, touching no lung
    _lesions_into_sided_lungs(lungs, lesion, spacing_zyx=(2.0, 1.0, 1.0))
    assert lungs[0, 0, 0] == 0
    assert (lungs[5, 15, 20:30] == 1).all() and (lungs[5, 15, 30:40] == 2).all()  # the gap's middle is x = 30
