"""Model files: checksum verification, clear errors for missing/corrupt weights, one load per process."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.errors import ErrorCode, SegmentationError
from segmentation.inference import load_model
from segmentation.network import NetworkSpec, build_network
from segmentation.preprocess import PreprocessParameters
from segmentation.weights import default_description_path, read_description, verify_checksum, write_model

TINY = NetworkSpec(in_channels=3, channels=(4, 8), strides=(2,), num_res_units=0, norm="batch")
PARAMS = PreprocessParameters(
    spacing_zyx_mm=(2.5, 1.75, 1.75),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=5.0,
    size_multiple=2,
    context_offsets=(-1, 0, 1),
)


@pytest.fixture
def tiny_model(tmp_path):
    net = build_network(TINY)
    return write_model(
        directory=tmp_path,
        model_id="tiny",
        state_dict=net.state_dict(),
        architecture=TINY,
        preprocessing=PARAMS,
        metadata={"note": "test"},
    )


def test_written_model_reads_back_and_verifies(tiny_model):
    description = read_description(tiny_model)
    assert description.model_id == "tiny" and description.architecture == TINY and description.preprocessing == PARAMS
    verify_checksum(description)
    model = load_model(tiny_model, device="cpu")
    assert model.sha256 == description.sha256
    assert load_model(tiny_model, device="cpu") is model  # loaded once per process


def test_corrupt_copy_is_refused(tiny_model, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    shutil.copy(tiny_model, corrupt / tiny_model.name)
    data = bytearray((tiny_model.parent / "tiny.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "tiny.pt").write_bytes(bytes(data))
    with pytest.raises(SegmentationError) as info:
        load_model(corrupt / tiny_model.name, device="cpu")
    assert info.value.code is ErrorCode.WEIGHTS_CORRUPT
    assert "SHA-256" in info.value.message


def test_missing_files_are_reported(tiny_model, tmp_path):
    with pytest.raises(SegmentationError) as info:
        read_description(tmp_path / "nowhere.json")
    assert info.value.code is ErrorCode.WEIGHTS_MISSING
    (tiny_model.parent / "tiny.pt").unlink()
    with pytest.raises(SegmentationError) as info:
        read_description(tiny_model)
    assert info.value.code is ErrorCode.WEIGHTS_MISSING


def test_invalid_description_is_corrupt(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model_id": "x"}))
    with pytest.raises(SegmentationError) as info:
        read_description(bad)
    assert info.value.code is ErrorCode.WEIGHTS_CORRUPT


def test_weights_that_do_not_fit_the_architecture_are_corrupt(tiny_model):
    data = json.loads(tiny_model.read_text())
    data["architecture"]["channels"] = [8, 16]
    tiny_model.write_text(json.dumps(data))
    with pytest.raises(SegmentationError) as info:
        load_model(tiny_model, device="cpu")
    assert info.value.code is ErrorCode.WEIGHTS_CORRUPT


def test_shipped_weights_match_their_checksum():
    description = read_description(default_description_path())
    verify_checksum(description)
    assert description.weights_path.stat().st_size < 8 * 1024 * 1024
    assert description.model_id == "lunglesion-seg-v4"


def test_thresholds_travel_with_the_model(tmp_path):
    from segmentation.postprocess import Thresholds

    net = build_network(TINY)
    path = write_model(
        directory=tmp_path,
        model_id="calibrated",
        state_dict=net.state_dict(),
        architecture=TINY,
        preprocessing=PARAMS,
        metadata={},
        thresholds=Thresholds(lung=0.5, lesion=0.3),
    )
    assert json.loads(path.read_text())["postprocessing"] == {"lung_threshold": 0.5, "lesion_threshold": 0.3}
    assert read_description(path).thresholds == Thresholds(lung=0.5, lesion=0.3)
    # A model JSON written before thresholds existed decides at 0.5.
    data = json.loads(path.read_text())
    del data["postprocessing"]
    path.write_text(json.dumps(data))
    assert read_description(path).thresholds == Thresholds()


def test_a_weights_path_under_home_is_expanded(tiny_model, tmp_path, monkeypatch):
    """``segmentation.weights: ~/models/tiny.json`` in a config file names the file in the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    description = read_description(f"~/{tiny_model.name}")
    assert description.model_id == "tiny" and description.weights_path.parent == tmp_path
