"""The real-data checks' scoring rules, on synthetic arrays (no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.realdata import NSCLC_PATIENTS, check_lidc_ggo, check_nsclc_tumours
from segmentation.result import LungSegmentation
from segmentation.synth.backgrounds import DataRoot


def _write(folder: Path, prefix: str, arrays: dict[str, np.ndarray], *, spacing: tuple[float, float, float]) -> None:
    """``folder/<prefix>_<name>.nii.gz`` for each array, on one grid (``spacing`` in x, y, z)."""
    for name, array in arrays.items():
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(folder / f"{prefix}_{name}.nii.gz"))


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
    _write(labels, "LIDC-IDRI-0002", {"ct": hu, "nreaders": readers}, spacing=(0.7, 0.7, 2.5))
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


@pytest.fixture
def nsclc_root(tmp_path: Path) -> DataRoot:
    """A stand-in for the radiomics-phantom set: each patient a 4 x 20 x 20 crop with a 100-voxel GTV."""
    labels = tmp_path / "radiomics-phantom-nsclc-gtv" / "labels"
    labels.mkdir(parents=True)
    hu = np.full((4, 20, 20), -850, np.int16)
    gtv = np.zeros(hu.shape, np.uint8)
    gtv[1:2, 5:15, 5:15] = 1
    hu[gtv > 0] = 30
    for patient in NSCLC_PATIENTS:
        _write(labels, patient, {"ct": hu, "labels": gtv}, spacing=(1.0, 1.0, 3.0))
    return DataRoot(tmp_path)


def test_a_tumour_is_found_from_a_tenth_of_its_gtv_and_covered_from_half(nsclc_root):
    lesions = np.zeros((4, 20, 20), np.uint8)
    lesions[1, 5:15, 5:10] = 2  # half of the GTV, consolidation
    lesions[1, 5:15, 10:11] = 1  # a tenth more, GGO
    lesions[3, 0:2, 0:3] = 2  # 6 voxels outside the GTV
    result = check_nsclc_tumours(nsclc_root, {"model": _segmenter(lesions)})
    record = result["pat_1"]["model"]
    assert record["gtv_as_consolidation"] == pytest.approx(0.5)
    assert record["gtv_as_ggo"] == pytest.approx(0.1)
    assert record["found"] and record["covered"]
    assert record["lesion_ml_outside_gtv"] == pytest.approx(6 * 3.0 / 1000)
    assert record["consolidation_ml_outside_gtv"] == pytest.approx(6 * 3.0 / 1000)
    assert record["ggo_ml_outside_gtv"] == 0.0
    assert result["pat_1"]["gtv_ml"] == pytest.approx(100 * 3.0 / 1000)
    assert result["pat_1"]["gtv_median_hu"] == 30
    assert result["model"] == {"found": 4, "covered": 4, "failed": 0}


def test_a_lesion_touching_the_gtv_does_not_find_it(nsclc_root):
    lesions = np.zeros((4, 20, 20), np.uint8)
    lesions[1, 5:15, 4:6] = 1  # a GGO rim: 10 of the 100 GTV voxels is found, 9 is not
    lesions[1, 14, 5] = 0
    record = check_nsclc_tumours(nsclc_root, {"model": _segmenter(lesions)})["pat_2"]["model"]
    assert record["gtv_as_lesion"] == pytest.approx(0.09)
    assert not record["found"] and not record["covered"]


def test_a_crop_the_segmenter_refuses_is_reported_not_fatal(nsclc_root):
    def refuse(image: sitk.Image) -> LungSegmentation:
        raise ValueError("no lung found")

    result = check_nsclc_tumours(nsclc_root, {"model": refuse})
    assert result["pat_3"]["model"] == {"error": "no lung found"}
    assert result["model"] == {"found": 0, "covered": 0, "failed": 4}
