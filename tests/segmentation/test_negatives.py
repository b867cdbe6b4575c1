"""Lung-free negative training cases (segmentation/synth/negatives.py, segmentation/training/cache.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from segmentation.preprocess import PreprocessParameters
from segmentation.synth.backgrounds import DataRoot
from segmentation.synth.negatives import NEGATIVE_KIND, NEGATIVE_SOURCES, load_negative, negative_source
from segmentation.training.cache import build_negative_cache, negative_cache_key

PARAMS = PreprocessParameters(
    spacing_zyx_mm=(6.0, 3.0, 3.0),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=3.0,
    size_multiple=16,
    context_offsets=(-1, 0, 1),
)


@pytest.fixture
def data_root(tmp_path):
    """A folder holding a fake ``totalsegmentator-tests`` set: 90 slices of 'abdomen' with gas."""
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[:90, :40, :48]
    body = ((y - 20) / 17.0) ** 2 + ((x - 24) / 21.0) ** 2 <= 1
    hu = np.where(body, 40.0, -1000.0) + rng.normal(0, 10, body.shape)
    hu[(np.abs(y - 14) < 3) & (np.abs(x - 30) < 4)] = -950.0  # a loop of gas-filled colon
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing((3.0, 3.0, 3.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    folder = tmp_path / "data" / "totalsegmentator-tests"
    folder.mkdir(parents=True)
    sitk.WriteImage(image, str(folder / "example_ct.nii.gz"))
    return tmp_path / "data"


def test_the_slab_is_loaded_with_empty_labels(data_root):
    item = negative_source("tseg-abdomen")
    background = load_negative(item, DataRoot(data_root))
    assert background.hu.shape == (item.stop_slice - item.first_slice, 40, 48)
    assert background.spacing_zyx == (3.0, 3.0, 3.0)
    assert not background.lungs.any() and not background.nodules.any()
    assert background.hu.min() >= -1024.0


def test_a_slab_outside_its_volume_is_refused(data_root):
    item = dataclasses.replace(negative_source("tseg-abdomen"), stop_slice=200)
    with pytest.raises(ValueError, match="outside its 90-slice volume"):
        load_negative(item, DataRoot(data_root))


def test_negative_cases_are_background_everywhere_and_reproducible(data_root, tmp_path):
    first = build_negative_cache(data_root=data_root, cache_dir=tmp_path / "a", params=PARAMS, n_cases=3, seed=0)
    index = json.loads((first / "index.json").read_text())
    assert [r["kind"] for r in index["cases"]] == [NEGATIVE_KIND] * 3
    assert len({r["acquisition"] for r in index["cases"]}) > 1  # each case its own acquisition
    for record in index["cases"]:
        case = first / record["folder"]
        image = np.load(case / "image.npy")
        assert image.dtype == np.float16 and list(image.shape) == record["shape"]
        assert image.max() > 0.3 and image.min() < -0.8  # soft tissue (40 HU: 0.42) and air both present
        assert not np.load(case / "lungs.npy").any()
        assert not np.load(case / "lesions.npy").any()
    # Another folder, the same cases; and a rerun after losing a case and the index resumes identically.
    second = build_negative_cache(data_root=data_root, cache_dir=tmp_path / "b", params=PARAMS, n_cases=3, seed=0)
    reference = {p.relative_to(first): p.read_bytes() for p in first.rglob("*.npy")}
    assert reference == {p.relative_to(second): p.read_bytes() for p in second.rglob("*.npy")}
    for path in (second / "case-0001").iterdir():
        path.unlink()
    (second / "index.json").unlink()
    build_negative_cache(data_root=data_root, cache_dir=tmp_path / "b", params=PARAMS, n_cases=3, seed=0)
    assert reference == {p.relative_to(second): p.read_bytes() for p in second.rglob("*.npy")}


def test_the_negative_cache_key_follows_its_inputs():
    key = negative_cache_key(PARAMS, 24, 0)
    assert key == negative_cache_key(PARAMS, 24, 0)
    assert len({key, negative_cache_key(PARAMS, 12, 0), negative_cache_key(PARAMS, 24, 1)}) == 3


def test_negative_cases_are_drawn_and_teach_background(data_root, tmp_path):
    from segmentation.training.train import SliceSampler, TrainConfig, open_cache

    folder = build_negative_cache(data_root=data_root, cache_dir=tmp_path, params=PARAMS, n_cases=2, seed=0)
    cases = open_cache(folder, kind_weights={NEGATIVE_KIND: 0.5})
    assert [c.weight for c in cases] == [0.5, 0.5]
    assert all(c.lung_slices.size == 0 and c.lesion_slices.size == 0 for c in cases)
    config = TrainConfig(
        steps=1,
        batch_size=4,
        learning_rate=1e-3,
        weight_decay=0.0,
        warmup_steps=0,
        crop=(32, 32),
        lesion_weight=1.0,
        augment_strength=0.0,
        lung_slice_fraction=0.85,
        seed=0,
        threads=1,
        validate_every=1,
        lesion_slice_fraction=0.5,
    )
    image, lungs, lesions = SliceSampler(cases, PARAMS, config, torch.Generator().manual_seed(0)).draw(6)
    assert image.shape == (6, 3, 32, 32)
    assert not lungs.any() and not lesions.any()


def test_the_slab_shares_no_slice_with_the_lung_base_check(shared_data):
    """The negatives stop below example_ct_sm.nii.gz, whose lobes start tens of mm higher up."""
    folder = shared_data("totalsegmentator-tests")
    (item,) = [s for s in NEGATIVE_SOURCES if s.dataset == "totalsegmentator-tests"]
    volume = sitk.ReadImage(str(folder / item.relative))
    assert volume.GetDirection()[8] > 0  # the slice index runs along +z of LPS: towards the head
    full = sitk.GetArrayFromImage(volume)
    check = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_ct_sm.nii.gz")))
    lobes = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg.nii.gz")))
    # Where the check's slices sit inside the full volume (NumPy axis 0 = the slice axis).
    depth = check.shape[0]
    matches = [k for k in range(full.shape[0] - depth + 1) if np.array_equal(full[k : k + depth], check)]
    assert len(matches) == 1
    start = matches[0]
    assert item.stop_slice <= start  # no slice of the check is trained on
    lung_slices = np.flatnonzero(((lobes >= 10) & (lobes <= 14)).any(axis=(1, 2))) + start
    # The lowest lung slice has the smallest index; the slab's top slice is stop_slice - 1.
    gap_mm = (lung_slices.min() - item.stop_slice + 1) * volume.GetSpacing()[2]
    assert gap_mm >= 50.0
