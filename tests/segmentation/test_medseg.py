"""The MedSeg slices as training signal and as a check: split, training cache and scoring (stand-in files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.preprocess import PreprocessParameters
from segmentation.realdata import check_medseg
from segmentation.result import LungSegmentation
from segmentation.synth.backgrounds import DataRoot
from segmentation.synth.lesions import ANY_LUNG_LABEL, IGNORE_LABEL
from segmentation.synth.medseg import in_field, load_medseg, split_medseg
from segmentation.training.cache import MEDSEG_KIND, build_medseg_cache

PARAMS = PreprocessParameters(
    spacing_zyx_mm=(2.5, 1.5, 1.5),
    hu_min=-1024.0,
    hu_max=476.0,
    body_threshold_hu=-500.0,
    body_margin_mm=3.0,
    size_multiple=8,
    context_offsets=(-1, 0, 1),
)
#: MedSeg's own numbering has gaps; "10" must sort after "3".
NUMBERS = ("0", "3", "10", "33", "34", "67")


@pytest.fixture
def medseg_root(tmp_path: Path) -> DataRoot:
    """Six 64 x 80 stand-in slices: a bright body ellipse with two dark lungs, a GGO and a consolidation."""
    from PIL import Image

    base = tmp_path / "medseg-covid-2d-train" / "TrainingSet" / "MultiClassInfection-Train"
    (base / "Imgs").mkdir(parents=True)
    (base / "GT").mkdir()
    yy, xx = np.mgrid[:64, :80]
    rng = np.random.default_rng(0)
    for k, number in enumerate(NUMBERS):
        pixels = np.full((64, 80), 5, np.uint8)
        pixels[((yy - 32) / 28) ** 2 + ((xx - 40) / 36) ** 2 < 1] = 200  # soft tissue
        pixels[10:54, 10:36] = 30  # lungs
        pixels[10:54, 44:70] = 30
        labels = np.zeros((64, 80), np.uint8)
        labels[20:30, 14 + k : 24 + k] = 1
        labels[36:46, 50:60] = 2
        pixels[labels == 1] = 90
        pixels[labels == 2] = 190
        noisy = np.clip(pixels.astype(int) + rng.integers(-3, 4, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(base / "Imgs" / f"{number}.jpg", quality=95)
        Image.fromarray(labels).save(base / "GT" / f"{number}.png")
    return DataRoot(tmp_path)


def test_the_split_is_by_number_and_halves_the_slices(medseg_root):
    trainable, check = split_medseg(load_medseg(medseg_root.dataset("medseg-covid-2d-train")))
    assert [item.name for item in trainable] == ["0", "3", "10"]
    assert [item.name for item in check] == ["33", "34", "67"]


def test_the_training_cache_teaches_lesions_as_lung_of_either_side_and_is_reproducible(medseg_root, tmp_path):
    folder = build_medseg_cache(data_root=medseg_root.root, cache_dir=tmp_path / "cache", params=PARAMS)
    index = json.loads((folder / "index.json").read_text())
    assert [(r["slice"], r["kind"]) for r in index["cases"]] == [(n, MEDSEG_KIND) for n in ("0", "3", "10")]
    first = folder / "case-0000"
    lungs, lesions = np.load(first / "lungs.npy"), np.load(first / "lesions.npy")
    image = np.load(first / "image.npy")
    assert image.shape[0] == lungs.shape[0] == 1
    # No lung masks in MedSeg: the lung head is taught only that a labelled lesion is lung (either side).
    assert np.array_equal(lungs == ANY_LUNG_LABEL, lesions > 0)
    assert np.all(lungs[lesions == 0] == IGNORE_LABEL)
    # The targets sit where the labelled intensities are (the image is canonical like the labels).
    ggo, consolidation = image[lesions == 1], image[lesions == 2]
    assert ggo.size > 10 and consolidation.size > 10
    assert np.median(consolidation) > np.median(ggo) > np.median(image[(lesions == 0) & (image < -0.5)])
    again = build_medseg_cache(data_root=medseg_root.root, cache_dir=tmp_path / "other", params=PARAMS)
    assert again.name == folder.name
    assert np.array_equal(np.load(again / "case-0000" / "lesions.npy"), lesions)


def _labelled_as(truth: dict[str, np.ndarray], wrong: set[str]):
    """A segmenter answering each slice with its reference, or with no lung and no lesion for the ``wrong`` ones."""

    def segment(image: sitk.Image) -> LungSegmentation:
        hu = sitk.GetArrayFromImage(image)[0]
        name = next(n for n, (h, _) in truth.items() if h.shape == hu.shape and np.array_equal(h, hu))
        labels = np.zeros_like(truth[name][1]) if name in wrong else truth[name][1]
        lungs = np.full(labels.shape, name not in wrong, np.uint8)  # the wrong ones cut the lesions out of the lung
        out = []
        for array in (lungs, labels):
            item = sitk.GetImageFromArray(array[None].astype(np.uint8))
            item.CopyInformation(image)
            out.append(item)
        return LungSegmentation(lungs=out[0], lesions=out[1], model_id="test", model_sha256="")

    return segment


def test_check_scores_each_half_and_pools_both(medseg_root):
    slices = load_medseg(medseg_root.dataset("medseg-covid-2d-train"))
    truth = {item.name: (np.rint(item.hu).astype(np.int16), item.labels) for item in slices}
    result = check_medseg(medseg_root, {"model": _labelled_as(truth, wrong={"33", "34", "67"})})
    assert (result["trainable_slices"], result["check_slices"]) == (3, 3)
    model = result["model"]
    assert model["trainable_half"]["dice_lesion_pooled"] == pytest.approx(1.0)
    assert model["check_half"]["dice_lesion_pooled"] == pytest.approx(0.0)
    # Pooled over all six: half the reference voxels found, nothing false.
    assert model["dice_lesion_pooled"] == pytest.approx(2 / 3)
    assert model["dice_lesion_median_per_slice"] == pytest.approx(0.5)
    assert model["reference_lesion_in_lung"] == pytest.approx(0.5)
    assert model["check_half"]["reference_lesion_in_lung"] == 0.0


def test_in_field_is_the_body_crop_with_every_sizeable_part_of_the_body():
    from segmentation.synth.medseg import MedSegSlice

    hu = np.full((60, 130), -1000.0, np.float32)  # air
    hu[5:55, 20:90] = 40.0  # the mediastinum and spine, the largest part
    hu[17:43, 40:65] = -850.0  # a lung inside it
    hu[10:50, 110:122] = 40.0  # a piece of lateral chest wall across the other lung
    hu[0:6, 0:6] = 40.0  # a speck
    item = MedSegSlice(name="0", hu=hu, labels=np.zeros(hu.shape, np.uint8), air_intensity=0, tissue_intensity=0)
    field = in_field(item)
    assert field[17:43, 40:65].all()  # the lung inside the body
    assert field[10:50, 90:122].all()  # the air lung between the parts is within reach
    assert not field[:, :6].any()  # left of the crop: the speck did not widen it
