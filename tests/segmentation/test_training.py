"""Training loop determinism and the fine-tuning path on a user's labelled data (tiny network, phantom data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from segmentation.inference import load_model
from segmentation.network import NetworkSpec, build_network
from segmentation.preprocess import PreprocessParameters
from segmentation.synth.lesions import PlanKind, render, sample_plan
from segmentation.synth.phantom import make_phantom
from segmentation.training.cases import SimulatedSeries, working_sample
from segmentation.training.train import CachedCase, TrainConfig, train_network
from segmentation.weights import read_description, verify_checksum, write_model

TINY = NetworkSpec(in_channels=3, channels=(4, 8, 16), strides=(2, 2), num_res_units=0, norm="batch")
PARAMS = PreprocessParameters(
    spacing_zyx_mm=(5.0, 4.0, 4.0),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=5.0,
    size_multiple=4,
    context_offsets=(-1, 0, 1),
)
CONFIG = TrainConfig(
    steps=3,
    batch_size=2,
    learning_rate=1e-3,
    weight_decay=0.0,
    warmup_steps=1,
    crop=(64, 64),
    lesion_weight=1.0,
    augment_strength=1.0,
    lung_slice_fraction=0.8,
    seed=5,
    threads=1,
    validate_every=100,
)


@pytest.fixture(scope="module")
def cases():
    phantom = make_phantom(shape=(24, 96, 112), spacing_zyx=(5.0, 3.0, 3.0))
    plan = sample_plan(np.random.default_rng(1), phantom.lungs, phantom.spacing_zyx, PlanKind.FOCAL)
    lesioned = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, plan)
    series = SimulatedSeries(
        hu=lesioned.hu,
        spacing_zyx=phantom.spacing_zyx,
        z_positions=np.arange(24, dtype=float),
        thickness_mm=5.0,
        native_lungs=phantom.lungs,
        native_lesions=lesioned.lesions,
        native_ignore=np.zeros(phantom.hu.shape, bool),
        native_spacing_zyx=phantom.spacing_zyx,
    )
    image, lungs, lesions, _ = working_sample(series, PARAMS)
    assert (lungs > 0).any() and (lesions > 0).any()
    slices = np.flatnonzero(lungs.reshape(lungs.shape[0], -1).max(axis=1) > 0)
    return [CachedCase("phantom", image.astype(np.float16), lungs, lesions, 1.0, slices)]


def test_training_is_deterministic(cases):
    a = train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG)
    b = train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG)
    assert a.steps == 3 and len(a.history) == 1
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    start = build_network(TINY).state_dict()
    assert not all(torch.equal(a.state_dict[k], start[k]) for k in start if start[k].is_floating_point())


def test_finetune_on_user_labels(tmp_path, monkeypatch):
    from pipeline.config import load_settings
    from segmentation.labelmap import LabelMap
    from segmentation.training import finetune as finetune_module

    base = write_model(
        directory=tmp_path / "base",
        model_id="tiny",
        state_dict=build_network(TINY).state_dict(),
        architecture=TINY,
        preprocessing=PARAMS,
        metadata={},
    )
    user = tmp_path / "user"
    user.mkdir()
    phantom = make_phantom(shape=(24, 96, 112), spacing_zyx=(5.0, 3.0, 3.0), seed=4)
    sitk.WriteImage(phantom.image(), str(user / "case1_ct.nii.gz"))
    label = sitk.GetArrayFromImage(phantom.lung_image()) * 7  # the user's values: 7 right, 14 left
    label_image = sitk.GetImageFromArray(label.astype(np.uint8))
    label_image.CopyInformation(phantom.image())
    sitk.WriteImage(label_image, str(user / "case1_label.nii.gz"))
    (tmp_path / "map.json").write_text(json.dumps({"right_lung": 7, "left_lung": 14}))
    training = load_settings().segmentation.training.model_copy(
        update={"cache_dir": tmp_path / "cache", "batch_size": 2, "crop": (64, 64), "threads": 1}
    )
    out = finetune_module.finetune(
        labels_dir=user,
        label_map=LabelMap.read(tmp_path / "map.json"),
        base_weights=base,
        output_dir=tmp_path / "ft",
        model_id="tiny-ft",
        settings=training,
        data_root=None,
        steps=2,
    )
    description = read_description(out)
    verify_checksum(description)
    assert description.metadata["training"]["from"]["model_id"] == "tiny"
    assert description.metadata["training"]["user_cases"] == 1
    assert load_model(out, device="cpu").model_id == "tiny-ft"
