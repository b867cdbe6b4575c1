"""The real-data checks' scoring rules, on synthetic arrays (no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.realdata import check_lidc_ggo
from segmentation.result import LungSegmentation
from segmentation.synth.backgrounds import DataRoot


@pytest.fixture
def lidc_root(tmp_path: Path) -> DataRoot:
    """A stand-in for the LIDC data set: a 6 x 32 x 32 slab with a 2-reader core inside a 1-reader rim."""
    labels = tmp_path / "lidc-3slabs-nodule-outlines" / "labels"
    labels.mkdir(parents=True)
    hu = np.full((6, 32, 32), -850, np.int16)
    readers = np.zeros(hu.shape, np.uint8)
    readers[1:5, 10:20, 10:20] = 1
    readers[2:4, 12:18, 12:18] = 2
    hu[readers > 0] = -600
    for array, name in ((hu, "ct"), (readers, "nreaders")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.7, 0.7, 2.5))
        sitk.WriteImage(image, str(labels / f"LIDC-IDRI-0002_{name}.nii.gz"))
    return DataRoot(tmp_path)


def _segmenter(lesions: np.ndarray):
    def segment(image: sitk.Image) -> LungSegmentation:
        lungs = sitk.GetImageFromArray(np.ones(lesions.shape, np.uint8))
        lesion_image = sitk.GetImageFromArray(lesions.astype(np.uint8))
        for item in (lungs, lesion_image):
            item.CopyInformation(image)
        return LungSegmentation(lungs=lungs, lesions=lesion_image, model_id="test", model_sha256="")

    return segment


def test_a_small_ggo_inside_the_nodule_is_found_but_does_not_cover_it(lidc_root):
    lesions = np.zeros((6, 32, 32), np.uint8)
    lesions[2:4, 13:17, 13:17] = 1  # 32 of the 400 outline voxels
    lesions[0, 0:2, 0:2] = 1  # a separate false lesion
    result = check_lidc_ggo(lidc_root, {"model": _segmenter(lesions)})
    model = result["model"]
    assert model["found_as_ggo"] and not model["covered_as_ggo"]
    assert model["false_components"] == 1
    assert model["nodule_as_ggo"] == pytest.approx(32 / 400)
    assert model["nodule_consensus_as_ggo"] == pytest.approx(32 / 72)
    assert result["nodule_consensus_ml"] == pytest.approx(72 * 0.7 * 0.7 * 2.5 / 1000)


def test_a_nodule_called_consolidation_or_missed_is_not_found(lidc_root):
    consolidation = np.zeros((6, 32, 32), np.uint8)
    consolidation[1:5, 10:20, 10:20] = 2
    called = check_lidc_ggo(lidc_root, {"model": _segmenter(consolidation)})["model"]
    assert not called["found_as_ggo"] and not called["covered_as_ggo"]
    missed = check_lidc_ggo(lidc_root, {"model": _segmenter(np.zeros((6, 32, 32), np.uint8))})["model"]
    assert not missed["found_as_ggo"] and missed["false_components"] == 0


def test_most_of_the_outline_as_ggo_is_covered(lidc_root):
    lesions = np.zeros((6, 32, 32), np.uint8)
    lesions[1:5, 10:20, 11:20] = 1  # 360 of 400
    model = check_lidc_ggo(lidc_root, {"model": _segmenter(lesions)})["model"]
    assert model["found_as_ggo"] and model["covered_as_ggo"] and model["false_components"] == 0
