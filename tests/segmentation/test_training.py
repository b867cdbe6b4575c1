"""Training loop determinism, resuming from a checkpoint, fine-tuning on a user's labels (tiny network, phantom)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from segmentation.inference import load_model
from segmentation.network import NetworkSpec, build_network
from segmentation.postprocess import Cleanup
from segmentation.preprocess import PreprocessParameters
from segmentation.synth.lesions import ANY_LUNG_LABEL, IGNORE_LABEL, PlanKind, render, sample_plan
from segmentation.synth.phantom import make_phantom
from segmentation.training.cases import SimulatedSeries, working_sample
from segmentation.training.train import (
    CachedCase,
    TrainConfig,
    monitor_labels,
    segmentation_loss,
    train_network,
    working_dice,
)
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


def _tiny_model(directory, state_dict=None):
    """A saved tiny model (random weights) and its JSON path."""
    state = state_dict if state_dict is not None else build_network(TINY).state_dict()
    return write_model(
        directory=directory, model_id="tiny", state_dict=state, architecture=TINY, preprocessing=PARAMS, metadata={}
    )


def test_training_is_deterministic(cases):
    a = train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG)
    b = train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG)
    assert a.steps == 3 and len(a.history) == 1
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    start = build_network(TINY).state_dict()
    assert not all(torch.equal(a.state_dict[k], start[k]) for k in start if start[k].is_floating_point())


class _Killed(Exception):
    """Stands for the job being killed right after a checkpoint was written."""


def _kill_after(step: int, monkeypatch) -> None:
    """Make training stop (as if killed) right after writing the checkpoint of ``step``."""
    from segmentation.training import train as train_module

    real = train_module.save_checkpoint

    def save_then_die(path, state):
        real(path, state)
        if state.step == step:
            raise _Killed

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)


def test_an_interrupted_run_continues_to_the_weights_of_an_uninterrupted_one(cases, tmp_path, monkeypatch):
    from segmentation.training.checkpoint import Checkpointing

    config = dataclasses.replace(CONFIG, steps=7)
    straight = train_network(cases=cases, spec=TINY, params=PARAMS, config=config)
    path = tmp_path / "m.checkpoint.pt"
    with monkeypatch.context() as patch:
        _kill_after(4, patch)
        with pytest.raises(_Killed):
            train_network(cases=cases, spec=TINY, params=PARAMS, config=config, checkpointing=Checkpointing(path, 2))
    assert path.exists()
    resumed = train_network(
        cases=cases, spec=TINY, params=PARAMS, config=config, checkpointing=Checkpointing(path, 2, resume=True)
    )
    assert resumed.steps == 7
    assert all(torch.equal(straight.state_dict[k], resumed.state_dict[k]) for k in straight.state_dict)
    # The logged means cover the steps before the interruption too.
    assert resumed.history == straight.history


def test_a_checkpoint_is_continued_only_by_the_run_that_wrote_it(cases, tmp_path):
    from pipeline.errors import ErrorCode, LunglesionError
    from segmentation.training.checkpoint import Checkpointing

    path = tmp_path / "m.checkpoint.pt"
    train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG, checkpointing=Checkpointing(path, 2))
    other = dataclasses.replace(CONFIG, learning_rate=2e-3)
    with pytest.raises(LunglesionError, match="different training run") as caught:
        train_network(
            cases=cases, spec=TINY, params=PARAMS, config=other, checkpointing=Checkpointing(path, 2, resume=True)
        )
    assert caught.value.code is ErrorCode.CHECKPOINT_INVALID
    reweighted = [dataclasses.replace(cases[0], weight=2.0)]
    with pytest.raises(LunglesionError, match="different training run"):
        train_network(
            cases=reweighted, spec=TINY, params=PARAMS, config=CONFIG, checkpointing=Checkpointing(path, 2, resume=True)
        )
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(LunglesionError, match="cannot be read") as caught:
        train_network(
            cases=cases, spec=TINY, params=PARAMS, config=CONFIG, checkpointing=Checkpointing(path, 2, resume=True)
        )
    assert caught.value.code is ErrorCode.CHECKPOINT_INVALID


def test_continue_without_a_checkpoint_starts_at_step_zero(cases, tmp_path):
    from segmentation.training.checkpoint import Checkpointing

    path = tmp_path / "m.checkpoint.pt"
    plain = train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG)
    result = train_network(
        cases=cases, spec=TINY, params=PARAMS, config=CONFIG, checkpointing=Checkpointing(path, 2, resume=True)
    )
    assert all(torch.equal(plain.state_dict[k], result.state_dict[k]) for k in plain.state_dict)
    assert path.exists()  # the final state, kept until the caller has written the model


def test_train_refuses_to_start_over_an_unfinished_run(tmp_path, capsys):
    from pipeline.cli.main import main

    out = tmp_path / "out"
    out.mkdir()
    unfinished = out / "m.checkpoint.pt"
    unfinished.write_bytes(b"state of an unfinished run")
    assert main(["train", "--out", str(out), "--model-id", "m", "--data-root", str(tmp_path)]) == 2
    assert "pass --continue" in capsys.readouterr().err
    assert unfinished.read_bytes() == b"state of an unfinished run"


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.stack([(labels == k) for k in range(3)], axis=1).astype(np.float32)


def test_monitor_scores_after_the_clean_up():
    """Outside-air 'lung' and a lesion outside the lungs count in a raw argmax, not after the clean-up."""
    image = np.full((6, 40, 60), -1.0, np.float32)  # air everywhere ...
    image[:, 5:35, 5:55] = 0.0  # ... but a body
    lungs = np.zeros(image.shape, np.uint8)
    lungs[:, 10:30, 10:25] = 1
    lungs[:, 10:30, 35:50] = 2
    image[lungs > 0] = -0.9  # aerated lung inside the body
    lesions = np.zeros(image.shape, np.uint8)
    lesions[:, 12:18, 12:18] = 2
    raw_lungs = lungs.copy()
    raw_lungs[:, 0:4, :] = 2  # the network's mistake: air outside the body called left lung ...
    raw_lesions = lesions.copy()
    raw_lesions[:, 0:3, 0:10] = 1  # ... with GGO in it
    prob = np.concatenate([_one_hot(raw_lungs), _one_hot(raw_lesions)], axis=1)
    cleanup = Cleanup(min_component_fraction=0.02, min_lesion_voxels=0)
    lung_pred, lesion_pred = monitor_labels(prob, image, PARAMS, cleanup)
    clean = working_dice(lung_pred, lesion_pred, lungs, lesions)
    raw = working_dice(raw_lungs, raw_lesions * (raw_lungs > 0), lungs, lesions)
    assert clean["right"] == clean["left"] == clean["lesion"] == 1.0
    assert raw["left"] < 0.8 and raw["lesion"] < 0.8


def test_monitor_cases_need_the_clean_up_settings(cases):
    case = cases[0]
    monitor = [("phantom", case.image.astype(np.float32), case.lungs, case.lesions)]
    with pytest.raises(ValueError, match="clean-up"):
        train_network(cases=cases, spec=TINY, params=PARAMS, config=CONFIG, validation=monitor)
    every_step = dataclasses.replace(CONFIG, steps=100, validate_every=50)  # monitored at step 50 and 100
    result = train_network(
        cases=cases, spec=TINY, params=PARAMS, config=every_step, validation=monitor, cleanup=Cleanup(0.02, 0)
    )
    assert [entry["step"] for entry in result.history if "validation" in entry] == [50, 100]
    scores = result.history[-1]["validation"]["phantom"]
    assert set(scores) == {"right", "left", "lesion", "fraction_pred", "fraction_true"}
    assert all(0.0 <= scores[k] <= 1.0 for k in ("right", "left", "lesion"))
    # Monitoring in the middle of training leaves the weights exactly as training without it.
    plain = train_network(cases=cases, spec=TINY, params=PARAMS, config=every_step)
    assert all(torch.equal(result.state_dict[k], plain.state_dict[k]) for k in plain.state_dict)


def test_consolidated_lung_weight_weighs_the_lung_head_where_consolidation_is():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 8, 8, generator=gen)
    lungs = torch.randint(0, 3, (2, 8, 8), generator=gen)
    lesions = torch.zeros(2, 8, 8, dtype=torch.long)
    plain, plain_lung, _ = segmentation_loss(logits, lungs, lesions, lesion_weight=1.0)
    # Without consolidation any weight is the plain mean.
    same, same_lung, _ = segmentation_loss(logits, lungs, lesions, lesion_weight=1.0, consolidated_lung_weight=3.0)
    assert torch.isclose(plain, same) and np.isclose(plain_lung, same_lung)
    # With consolidation on the voxels the lung head gets most wrong, weighing them up raises the
    # lung loss; the lesion loss is untouched.
    lung_ce = torch.nn.functional.cross_entropy(logits[:, 0:3], lungs, reduction="none")
    lesions[lung_ce > lung_ce.median()] = 2
    base, base_lung, base_lesion = segmentation_loss(logits, lungs, lesions, lesion_weight=1.0)
    _, heavy_lung, heavy_lesion = segmentation_loss(
        logits, lungs, lesions, lesion_weight=1.0, consolidated_lung_weight=3.0
    )
    assert heavy_lung > base_lung + 0.1 and heavy_lesion == base_lesion


def test_finetune_on_user_labels(tmp_path, monkeypatch):
    from pipeline.config import load_settings
    from segmentation.labelmap import LabelMap
    from segmentation.training import finetune as finetune_module

    base = _tiny_model(tmp_path / "base")
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
    assert not (tmp_path / "ft" / "tiny-ft.checkpoint.pt").exists()  # deleted once the model is written


def _write_cache(folder, kinds):
    records = []
    for index, kind in enumerate(kinds):
        case_dir = folder / f"case-{index:04d}"
        case_dir.mkdir(parents=True)
        np.save(case_dir / "image.npy", np.zeros((4, 8, 8), np.float16))
        lungs = np.zeros((4, 8, 8), np.uint8)
        lungs[1:3, 2:6, 2:6] = 1
        np.save(case_dir / "lungs.npy", lungs)
        np.save(case_dir / "lesions.npy", np.zeros((4, 8, 8), np.uint8))
        records.append({"folder": case_dir.name, "background": "phantom", "kind": kind})
    (folder / "index.json").write_text(json.dumps({"cases": records}))


def test_open_cache_weights_cases_by_family(tmp_path):
    from segmentation.training.train import SliceSampler, open_cache

    _write_cache(tmp_path, ["mixed", "none", "focal", "mixed"])
    plain = open_cache(tmp_path)
    assert [c.weight for c in plain] == [1.0, 1.0, 1.0, 1.0]
    assert plain[0].lung_slices.tolist() == [1, 2]
    weighted = open_cache(tmp_path, kind_weights={"mixed": 2.5, "none": 0.5})
    assert [c.weight for c in weighted] == [2.5, 0.5, 1.0, 2.5]
    sampler = SliceSampler(weighted, PARAMS, CONFIG, torch.Generator().manual_seed(0))
    assert sampler.case_p.tolist() == pytest.approx([2.5 / 6.5, 0.5 / 6.5, 1 / 6.5, 2.5 / 6.5])


def test_lesion_slices_are_oversampled_when_asked(tmp_path):
    from segmentation.training.train import SliceSampler, open_cache

    _write_cache(tmp_path, ["focal"])
    lesions = np.zeros((4, 8, 8), np.uint8)
    lesions[2, 3, 3] = 2  # one consolidation voxel on slice 2
    lesions[1, 4, 4] = 255  # the ignore label does not make a lesion slice
    np.save(tmp_path / "case-0000" / "lesions.npy", lesions)
    # A 4 x 8 x 8 case: crops of 8 x 8 hold a whole slice, so a draw's slice is told by its labels.
    config = dataclasses.replace(CONFIG, crop=(8, 8), lung_slice_fraction=0.0)
    (case,) = open_cache(tmp_path)
    assert case.lesion_slices.tolist() == [2]

    def share_with(label, cfg, n=400):
        """Share of ``n`` drawn crops that hold ``label``."""
        _, _, drawn = SliceSampler([case], PARAMS, cfg, torch.Generator().manual_seed(3)).draw(n)
        return (drawn == label).flatten(1).any(1).float().mean().item()

    assert share_with(2, config) == pytest.approx(0.25, abs=0.07)  # uniform over the 4 slices
    oversampling = dataclasses.replace(config, lesion_slice_fraction=0.5)
    assert share_with(2, oversampling) == pytest.approx(0.5 + 0.5 * 0.25, abs=0.07)
    assert share_with(255, oversampling) == pytest.approx(0.5 * 0.25, abs=0.06)


def test_starting_point_scratch_or_a_verified_model(tmp_path):
    from pipeline.errors import ErrorCode, SegmentationError
    from segmentation.training.run import DEFAULT_ARCHITECTURE, DEFAULT_PREPROCESSING, starting_point

    scratch = starting_point(None, architecture=DEFAULT_ARCHITECTURE, preprocessing=DEFAULT_PREPROCESSING)
    assert scratch.state_dict is None and scratch.origin == "scratch"
    assert scratch.architecture == DEFAULT_ARCHITECTURE

    state = build_network(TINY).state_dict()
    base = _tiny_model(tmp_path, state)
    begin = starting_point(base, architecture=DEFAULT_ARCHITECTURE, preprocessing=DEFAULT_PREPROCESSING)
    assert begin.architecture == TINY and begin.preprocessing == PARAMS  # the model's own design wins
    assert begin.origin == {"model_id": "tiny", "sha256": read_description(base).sha256}
    assert all(torch.equal(begin.state_dict[k], state[k]) for k in state)

    weights = read_description(base).weights_path
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(SegmentationError) as raised:
        starting_point(base, architecture=DEFAULT_ARCHITECTURE, preprocessing=DEFAULT_PREPROCESSING)
    assert raised.value.code is ErrorCode.WEIGHTS_CORRUPT


def test_train_command_says_which_shipped_weights_it_reproduced(tmp_path):
    from types import SimpleNamespace

    from pipeline.cli.train_cmd import reproduction_line

    stage1 = SimpleNamespace(model_id="m-v1", sha256="a" * 64, weights_path=tmp_path / "m-v1.pt", metadata={})
    shipped = SimpleNamespace(
        model_id="m-v2",
        sha256="b" * 64,
        weights_path=tmp_path / "m-v2.pt",
        metadata={"training": {"from": {"model_id": "m-v1", "sha256": "a" * 64}}},
    )
    other = SimpleNamespace(model_id="x", sha256="c" * 64, weights_path=tmp_path / "x.pt", metadata={})
    assert "identical to the shipped m-v2" in reproduction_line(shipped, shipped)
    line = reproduction_line(stage1, shipped)
    assert "identical to m-v1, stage 1 of the shipped m-v2" in line and "configs/train-stage2.yaml" in line
    assert str(tmp_path / "m-v1.json") in line
    assert "different from the shipped m-v2" in reproduction_line(other, shipped)
    # A rerun of stage 1 with other bits is named as a rerun of that stage, with the recorded hash.
    rerun = SimpleNamespace(model_id="m-v1", sha256="e" * 64, weights_path=tmp_path / "m-v1.pt", metadata={})
    line = reproduction_line(rerun, shipped)
    assert "different from m-v1, stage 1 of the shipped m-v2" in line and "a" * 64 in line
    # Three stages: each earlier one is recognised and pointed to the configuration after it.
    stage2 = SimpleNamespace(model_id="m-v2", sha256="b" * 64, weights_path=tmp_path / "m-v2.pt", metadata={})
    v3 = SimpleNamespace(
        model_id="m-v3",
        sha256="d" * 64,
        weights_path=tmp_path / "m-v3.pt",
        metadata={
            "training": {
                "from": {"model_id": "m-v2", "sha256": "b" * 64, "from": {"model_id": "m-v1", "sha256": "a" * 64}}
            }
        },
    )
    assert "stage 1 of the shipped m-v3" in reproduction_line(stage1, v3) and "train-stage2.yaml" in reproduction_line(
        stage1, v3
    )
    assert "stage 2 of the shipped m-v3" in reproduction_line(stage2, v3) and "train-stage3.yaml" in reproduction_line(
        stage2, v3
    )


def test_a_finished_training_is_not_failed_by_an_unreadable_shipped_model(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pipeline.cli.train_cmd import shipped_comparison
    from segmentation.weights import read_description

    new = SimpleNamespace(model_id="m", sha256="e" * 64, weights_path=tmp_path / "m.pt", metadata={})
    assert f"different from the shipped {read_description(None).model_id}" in shipped_comparison(new)
    monkeypatch.setattr("segmentation.weights.WEIGHTS_DIR", tmp_path)  # an installation without its model
    line = shipped_comparison(new)
    assert "e" * 64 in line and "not compared" in line and "WEIGHTS_MISSING" in line


def test_a_continued_model_records_every_stage_before_it(tmp_path):
    from segmentation.training.run import DEFAULT_ARCHITECTURE, DEFAULT_PREPROCESSING, starting_point
    from segmentation.weights import read_description

    shipped = read_description(None)
    begin = starting_point(shipped.weights_path, architecture=DEFAULT_ARCHITECTURE, preprocessing=DEFAULT_PREPROCESSING)
    assert begin.origin["model_id"] == shipped.model_id and begin.origin["sha256"] == shipped.sha256
    assert begin.origin["from"] == shipped.metadata["training"]["from"]


def test_continuing_refuses_to_overwrite_its_starting_model(tmp_path, capsys):
    from pipeline.cli.main import main

    base = _tiny_model(tmp_path / "models")
    before = read_description(base).weights_path.read_bytes()
    argv = ["train", "--weights", str(base), "--out", str(tmp_path / "models"), "--model-id", "tiny"]
    assert main([*argv, "--data-root", str(tmp_path)]) == 2
    assert "would overwrite the starting model" in capsys.readouterr().err
    assert read_description(base).weights_path.read_bytes() == before


def test_lung_head_learns_nothing_from_slices_without_lung_labels():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 8, 8, generator=gen)
    lungs = torch.randint(0, 3, (2, 8, 8), generator=gen)
    lesions = torch.randint(0, 3, (2, 8, 8), generator=gen)
    unlabelled = lungs.clone()
    unlabelled[0] = IGNORE_LABEL  # the first slice has lesion labels only (a MedSeg slice)
    _, lung_loss, lesion_loss = segmentation_loss(logits, unlabelled, lesions, lesion_weight=1.0)
    # The lung loss is the second slice's alone; the lesion head still learns from both.
    _, alone, _ = segmentation_loss(logits[1:], lungs[1:], lesions[1:], lesion_weight=1.0)
    _, _, both = segmentation_loss(logits, lungs, lesions, lesion_weight=1.0)
    assert lung_loss == pytest.approx(alone, rel=1e-5)
    assert lesion_loss == pytest.approx(both, rel=1e-6)
    # Whatever the lung logits say on the unlabelled slice, nothing changes.
    shifted = logits.clone()
    shifted[0, 0:3] += torch.randn(3, 8, 8, generator=gen) * 5
    _, moved, _ = segmentation_loss(shifted, unlabelled, lesions, lesion_weight=1.0, consolidated_lung_weight=2.0)
    _, fixed, _ = segmentation_loss(logits, unlabelled, lesions, lesion_weight=1.0, consolidated_lung_weight=2.0)
    assert moved == pytest.approx(fixed, rel=1e-6)


def test_lung_of_either_side_is_taught_as_lung_whatever_the_side():
    logits = torch.zeros(1, 6, 2, 2)
    lungs = torch.full((1, 2, 2), IGNORE_LABEL, dtype=torch.long)
    lungs[0, 0, 0] = ANY_LUNG_LABEL  # one voxel known to be lung, side unknown
    lesions = torch.zeros(1, 2, 2, dtype=torch.long)

    def lung_loss(background: float, right: float, left: float) -> float:
        scored = logits.clone()
        scored[0, 0:3, 0, 0] = torch.tensor([background, right, left])
        return segmentation_loss(scored, lungs, lesions, lesion_weight=1.0)[1]

    # The cross-entropy is -log(P(right) + P(left)): how the lung splits between sides is free.
    assert lung_loss(0.0, 3.0, -3.0) == pytest.approx(lung_loss(0.0, -3.0, 3.0), rel=1e-6)
    assert lung_loss(0.0, 0.0, 0.0) == pytest.approx(-np.log(2 / 3), rel=1e-5)
    assert lung_loss(-4.0, 0.0, 0.0) < lung_loss(0.0, 0.0, 0.0) < lung_loss(4.0, 0.0, 0.0)
    # The ignored voxels add nothing, whatever the network says there.
    moved = logits.clone()
    moved[0, 0:3, 1, 1] = torch.tensor([5.0, -5.0, 0.0])
    assert segmentation_loss(moved, lungs, lesions, lesion_weight=1.0)[1] == pytest.approx(lung_loss(0.0, 0.0, 0.0))


def test_extra_cases_get_their_share_of_the_draws():
    from segmentation.training.run import with_share

    def case(name: str, weight: float) -> CachedCase:
        empty = np.zeros((1, 4, 4), np.uint8)
        return CachedCase(name=name, image=empty.astype(np.float16), lungs=empty, lesions=empty, weight=weight)

    chests = [case("a", 1.0), case("b", 3.0)]
    mixed = with_share(chests, [case("m1", 7.0), case("m2", 1.0)], 0.2)
    weights = {c.name: c.weight for c in mixed}
    assert weights["a"] == 1.0 and weights["b"] == 3.0
    assert weights["m1"] == pytest.approx(weights["m2"])  # extra cases are drawn alike
    assert (weights["m1"] + weights["m2"]) / sum(weights.values()) == pytest.approx(0.2)
    assert with_share(chests, [], 0.2) == chests


def test_mirrored_samples_swap_their_lung_sides_and_keep_the_other_labels():
    from segmentation.training.augment import mirror_samples

    image = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).view(2, 1, 3, 4)
    lungs = torch.tensor([[[1, 1, 0, 2], [IGNORE_LABEL, 1, 2, ANY_LUNG_LABEL], [0, 0, 2, 2]]] * 2)
    lesions = torch.tensor([[[0, 1, 0, 2], [0, 0, 1, 0], [0, 0, 0, 0]]] * 2)
    which = torch.tensor([True, False])
    out_image, out_lungs, out_lesions = mirror_samples(image, lungs, lesions, which)
    assert torch.equal(out_image[0], image[0].flip(-1)) and torch.equal(out_image[1], image[1])
    assert torch.equal(out_lesions[0], lesions[0].flip(-1)) and torch.equal(out_lesions[1], lesions[1])
    expected = torch.tensor([[1, 0, 2, 2], [ANY_LUNG_LABEL, 1, 2, IGNORE_LABEL], [1, 1, 0, 0]])
    assert torch.equal(out_lungs[0], expected) and torch.equal(out_lungs[1], lungs[1])
    assert torch.equal(lungs[0, 0], torch.tensor([1, 1, 0, 2]))  # the inputs are not modified


def test_mirror_probability_mirrors_before_the_rest_of_the_augmentation():
    from segmentation.training.augment import augment_batch

    gen = torch.Generator().manual_seed(3)
    image = torch.rand(4, 3, 32, 48, generator=gen) * 2 - 1
    lungs = torch.randint(0, 3, (4, 32, 48), generator=gen)
    lesions = torch.randint(0, 3, (4, 32, 48), generator=gen)
    # strength 0: no geometry, intensity change or noise, and a symmetric blur/sharpen kernel, so
    # mirroring commutes with what is left of the augmentation.
    mirrored = augment_batch(image, lungs, lesions, torch.Generator().manual_seed(7), strength=0.0, mirror=1.0)
    plain_gen = torch.Generator().manual_seed(7)
    torch.rand(4, generator=plain_gen)  # the draw that chose the mirrored samples
    plain = augment_batch(image, lungs, lesions, plain_gen, strength=0.0)
    assert torch.allclose(mirrored[0], plain[0].flip(-1), atol=1e-5)  # float rounding of the identity warp
    swapped = plain[1].flip(-1).clone()
    swapped[plain[1].flip(-1) == 1], swapped[plain[1].flip(-1) == 2] = 2, 1
    assert torch.equal(mirrored[1], swapped)
    assert torch.equal(mirrored[2], plain[2].flip(-1))
    # At 0 nothing is drawn for mirroring: the batch is the shipped recipe's.
    again = augment_batch(image, lungs, lesions, torch.Generator().manual_seed(7), strength=1.0, mirror=0.0)
    default = augment_batch(image, lungs, lesions, torch.Generator().manual_seed(7), strength=1.0)
    assert all(torch.equal(a, b) for a, b in zip(again, default, strict=True))
