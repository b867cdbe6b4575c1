"""Lesion-threshold calibration: the threshold that measures the development cases best is chosen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from pipeline.errors import ErrorCode, LunglesionError
from segmentation.inference import LoadedModel
from segmentation.network import NetworkSpec
from segmentation.postprocess import Thresholds
from segmentation.preprocess import PreprocessParameters
from segmentation.synth.phantom import make_phantom
from segmentation.training.calibrate import calibrate_lesion_threshold
from segmentation.weights import ModelDescription

PARAMS = PreprocessParameters(
    spacing_zyx_mm=(5.0, 2.5, 2.5),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=5.0,
    size_multiple=4,
    context_offsets=(-1, 0, 1),
)


class UnsureNetwork(torch.nn.Module):
    """Reads the image like an under-confident model: lung = dark, right = low x; a lesion
    (-600 HU) gets P(lesion) = 0.38 only, so a 0.5 threshold finds none of it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x[:, x.shape[1] // 2]
        n, h, w = centre.shape
        logit = lambda p: torch.log(torch.as_tensor(p))  # noqa: E731
        out = torch.full((n, 6, h, w), -20.0)
        dark = centre < -0.3
        right = (torch.arange(w) < w // 2).expand(n, h, w)
        out[:, 0] = torch.where(dark, logit(0.02), logit(0.98))
        out[:, 1] = torch.where(dark & right, logit(0.97), logit(0.01))
        out[:, 2] = torch.where(dark & ~right, logit(0.97), logit(0.01))
        lesion = (centre > -0.55) & dark
        out[:, 3] = torch.where(lesion, logit(0.62), logit(0.95))
        out[:, 4] = torch.where(lesion, logit(0.38), logit(0.05))
        out[:, 5] = logit(1e-4)
        return out


def _dev_folder(tmp_path: Path, *, ignore_lesion: bool = False) -> Path:
    phantom = make_phantom(shape=(24, 96, 112), spacing_zyx=(5.0, 2.5, 2.5))
    hu = phantom.hu.copy()
    lesions = np.zeros(phantom.lungs.shape, np.uint8)
    box = (slice(8, 14), slice(40, 60), slice(20, 40))
    lesions[box] = 1
    lesions[phantom.lungs == 0] = 0
    hu[lesions > 0] = -600.0
    folder = tmp_path / "dev"
    folder.mkdir()
    spacing = tuple(float(s) for s in phantom.spacing_zyx[::-1])
    files = [("ct", np.rint(hu).astype(np.int16)), ("lungs", phantom.lungs), ("lesions", lesions)]
    if ignore_lesion:
        files.append(("ignore", (lesions > 0).astype(np.uint8)))
    for suffix, array in files:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(folder / f"case_{suffix}.nii.gz"))
    (folder / "cases.json").write_text(json.dumps([{"case": "case"}]))
    return folder


def _unsure_model(tmp_path: Path) -> LoadedModel:
    return LoadedModel(
        description=ModelDescription(
            model_id="unsure",
            weights_path=tmp_path / "none.pt",
            sha256="0" * 64,
            architecture=NetworkSpec(in_channels=3, channels=(4, 8), strides=(2,), num_res_units=0, norm="batch"),
            preprocessing=PARAMS,
            metadata={},
        ),
        network=UnsureNetwork().eval(),
        device="cpu",
    )


def test_the_threshold_that_recovers_the_lesion_is_chosen(tmp_path):
    result = calibrate_lesion_threshold(
        _unsure_model(tmp_path),
        _dev_folder(tmp_path),
        batch_slices=16,
        min_component_fraction=0.02,
        min_lesion_voxels=0,
    )
    errors = result.mean_abs_error_pp
    assert errors[0.5] > 2.0  # the lesion (several % of the lung) is missed at 0.5
    assert result.thresholds == Thresholds(lung=0.5, lesion=result.thresholds.lesion)
    assert result.thresholds.lesion < 0.4 and errors[result.thresholds.lesion] < 0.5
    assert errors[result.thresholds.lesion] == min(errors.values())
    assert result.to_dict()["chosen"]["lesion_threshold"] == result.thresholds.lesion


def test_ignored_voxels_are_left_out_of_the_error(tmp_path):
    # The same case with the lesion in its ignore file: neither finding nor missing it counts.
    result = calibrate_lesion_threshold(
        _unsure_model(tmp_path),
        _dev_folder(tmp_path, ignore_lesion=True),
        batch_slices=16,
        min_component_fraction=0.02,
        min_lesion_voxels=0,
    )
    assert max(result.mean_abs_error_pp.values()) < 0.2


def test_a_case_without_its_files_is_refused(tmp_path):
    folder = _dev_folder(tmp_path)
    (folder / "cases.json").write_text(json.dumps([{"case": "case"}, {"case": "gone"}]))
    with pytest.raises(LunglesionError) as info:
        calibrate_lesion_threshold(
            _unsure_model(tmp_path), folder, batch_slices=16, min_component_fraction=0.02, min_lesion_voxels=0
        )
    assert info.value.code is ErrorCode.INPUT_NOT_FOUND and "gone" in str(info.value)


def test_a_reference_off_the_image_grid_is_refused(tmp_path):
    # Calibration reads references like `lunglesion evaluate`: a shifted label file is not scored.
    folder = _dev_folder(tmp_path)
    lungs = sitk.ReadImage(str(folder / "case_lungs.nii.gz"))
    lungs.SetOrigin((0.0, 0.0, 12.5))
    sitk.WriteImage(lungs, str(folder / "case_lungs.nii.gz"))
    with pytest.raises(LunglesionError) as info:
        calibrate_lesion_threshold(
            _unsure_model(tmp_path), folder, batch_slices=16, min_component_fraction=0.02, min_lesion_voxels=0
        )
    assert info.value.code is ErrorCode.LABEL_GRID_MISMATCH
