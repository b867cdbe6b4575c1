"""Validation of the segmentation training settings, and the shipped second-stage recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError

STAGE2 = Path(__file__).resolve().parents[2] / "configs" / "train-stage2.yaml"


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def test_default_recipe_weighs_every_family_equally(settings):
    weights = settings.segmentation.training.kind_weights
    assert set(weights) == {"none", "focal", "diffuse", "border", "mixed", "no-lung"}
    assert set(weights.values()) == {1.0}
    assert settings.segmentation.training.consolidated_lung_weight == 1.0
    assert settings.segmentation.training.negative_cases == 0  # stages 1-3 train on chests only


def test_stage4_overlay_adds_negative_cases_to_the_stage3_recipe(settings):
    stage3 = load_settings(STAGE2.with_name("train-stage3.yaml")).segmentation.training
    stage4 = load_settings(STAGE2.with_name("train-stage4.yaml")).segmentation.training
    assert stage3.negative_cases == 0 < stage4.negative_cases
    same = ("n_cases", "seed", "holdout_background", "targets", "steps", "learning_rate", "warmup_steps")
    assert [getattr(stage4, f) for f in same] == [getattr(stage3, f) for f in same]
    assert stage4.kind_weights == stage3.kind_weights


def test_stage2_overlay_changes_only_the_schedule_and_family_weights(settings):
    stage2 = load_settings(STAGE2).segmentation.training
    base = settings.segmentation.training
    assert stage2.kind_weights["mixed"] > 1.0 and stage2.kind_weights["focal"] == 1.0
    assert stage2.steps < base.steps and stage2.learning_rate < base.learning_rate
    # Same synthetic cases as the first stage: the cache is keyed by these.
    assert (stage2.n_cases, stage2.seed, stage2.holdout_background) == (
        base.n_cases,
        base.seed,
        base.holdout_background,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segmentation:\n  training:\n    kind_weights: {lobar: 2.0}\n", "segmentation.training.kind_weights.lobar"),
        ("segmentation:\n  training:\n    kind_weights: {mixed: 0}\n", "kind_weights must be positive"),
        ("segmentation:\n  training:\n    consolidated_lung_weight: 0\n", "consolidated_lung_weight"),
    ],
)
def test_bad_training_weights_are_refused(tmp_path, text, message):
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert message in raised.value.message


def test_a_crop_of_zero_is_refused(tmp_path):
    path = tmp_path / "overlay.yaml"
    path.write_text("segmentation:\n  training:\n    crop: [0, 0]\n")
    with pytest.raises(ConfigError, match="positive multiples of 16"):
        load_settings(path)


def test_a_configuration_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "overlay.yaml"
    path.write_bytes(b"\xff\xfesegmentation: {}\n")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_settings(path)


def test_relative_paths_in_a_config_file_are_relative_to_that_file(tmp_path, monkeypatch):
    """Started from any folder, ``--config study/use_ft.yaml`` naming ``models/ft.json`` finds study/models/ft.json."""
    study = tmp_path / "study"
    study.mkdir()
    config = study / "use_ft.yaml"
    config.write_text("segmentation:\n  weights: models/ft.json\n  training:\n    cache_dir: cache\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("..") / "study" / "use_ft.yaml").segmentation
    assert settings.weights == study.resolve() / "models" / "ft.json"
    assert settings.training.cache_dir == study.resolve() / "cache"
    # absolute and home-relative values are kept as written
    config.write_text(f"segmentation:\n  weights: {tmp_path / 'abs.json'}\n  training:\n    cache_dir: ~/x\n")
    settings = load_settings(config).segmentation
    assert settings.weights == tmp_path / "abs.json" and str(settings.training.cache_dir) == "~/x"


def test_command_line_overrides_are_validated_like_the_config_file():
    from pipeline.config import override_settings

    settings = load_settings()
    changed = override_settings(settings, {"run": {"workers": 3}}, source="command line")
    assert changed.run.workers == 3 and settings.run.workers != 3
    with pytest.raises(ConfigError, match=r"command line: 'run.workers'"):
        override_settings(settings, {"run": {"workers": 300}}, source="command line")  # the limit is 256


def test_medseg_share_is_off_by_default_and_must_leave_room_for_the_chests(settings):
    training = settings.segmentation.training
    assert training.medseg_share == 0.0  # stages 1-4 never saw a MedSeg slice
    for share in (1.0, -0.1):
        with pytest.raises(ValueError, match="medseg_share"):
            training.model_validate({**training.model_dump(), "medseg_share": share})


def test_mirroring_is_off_by_default_and_needs_the_torch_augmentation(settings):
    training = settings.segmentation.training
    assert training.mirror_probability == 0.0  # stages 1-4 never mirrored a sample
    with pytest.raises(ValueError, match="mirror_probability"):
        training.model_validate({**training.model_dump(), "mirror_probability": 0.5, "augmentation": "monai"})
    assert training.model_validate({**training.model_dump(), "mirror_probability": 0.5}).mirror_probability == 0.5


def test_extra_backgrounds_are_none_by_default_and_must_be_known(settings):
    training = settings.segmentation.training
    assert training.extra_backgrounds == ()  # stages 1-4 trained on the standard backgrounds only
    for value in (["nsclc-1"], ["popi"], ["nsclc-2", "nsclc-2"]):
        with pytest.raises(ValueError, match="extra_backgrounds"):
            training.model_validate({**training.model_dump(), "extra_backgrounds": value})
    chosen = training.model_validate({**training.model_dump(), "extra_backgrounds": ["nsclc-4", "nsclc-2"]})
    assert chosen.extra_backgrounds == ("nsclc-4", "nsclc-2")
