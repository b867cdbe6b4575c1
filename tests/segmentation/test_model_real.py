"""The shipped model on real CT from ../shared/data (skipped where the data are absent)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.config import load_settings
from pipeline.errors import ErrorCode, SegmentationError
from segmentation import LesionLabel, LungLabel, segment
from segmentation.classical import segment_lungs
from segmentation.evaluation import dice
from segmentation.grid import canonical_array
from segmentation.realdata import check_lidc_ggo, check_medseg, check_nsclc_tumours
from segmentation.synth.backgrounds import DataRoot, findings_mask, read_volume, source
from segmentation.synth.lesions import DiffuseLesion, LesionPlan, Pattern, render

pytestmark = pytest.mark.shared_data

# Issue 3's acceptance targets that the shipped model does not reach yet (MODEL_CARD.md, "Limitations").
# strict: the day a model reaches one, the test XPASSes, fails, and must be promoted to a plain test.
ACCEPTANCE_GAP = pytest.mark.xfail(
    strict=True,
    reason="issue 3 acceptance target not met by the shipped model (see segmentation/MODEL_CARD.md)",
)


def _cip(shared_data):
    folder = shared_data("cip-chest-imaging-platform")
    image = sitk.ReadImage(str(folder / "ct-64.nrrd"))
    region = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd"))) & 255
    return image, (region >= 12) & (region <= 14), (region >= 9) & (region <= 11)


def _cip_result(shared_data):
    image, right, left = _cip(shared_data)
    result = segment(image, device="cpu")
    return image, right, left, result, sitk.GetArrayFromImage(result.lungs), sitk.GetArrayFromImage(result.lesions)


def test_cip_lungs(shared_data):
    image, right, left, result, lungs, lesions = _cip_result(shared_data)
    assert result.lungs.GetSize() == image.GetSize() and result.lungs.GetPixelID() == sitk.sitkUInt8
    assert result.lungs.GetOrigin() == image.GetOrigin() and result.lungs.GetSpacing() == image.GetSpacing()
    assert result.model_id == "lunglesion-seg-v4" and len(result.model_sha256) == 64
    # 4 mm reference from another algorithm: agreement well above chance, right/left not swapped.
    assert dice(lungs == LungLabel.RIGHT_LUNG, right) > 0.9
    assert dice(lungs == LungLabel.LEFT_LUNG, left) > 0.9
    volume_ml = (lungs > 0).sum() * np.prod(image.GetSpacing()) / 1000
    assert 3000 < volume_ml < 7000
    assert not (lesions[lungs == 0]).any()


def test_cip_no_lesions_and_no_bowel_gas(shared_data):
    image, _, left, _, lungs, lesions = _cip_result(shared_data)
    # A lesion-free scan: below 1 % of lung called lesion (v4 0.89 %; v3 3.98 %, v2 4.81 %, v1 3.69 %,
    # where gas-filled bowel under the left hemidiaphragm was taken for consolidated lung).
    assert (lesions > 0).sum() / (lungs > 0).sum() < 0.01
    # That bowel made the left lung too large (v3 +7 %, v2 +10 %); v4 is 1.8 % below the reference.
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    left_ml, reference_ml = (lungs == LungLabel.LEFT_LUNG).sum() * voxel_ml, left.sum() * voxel_ml
    assert abs(left_ml - reference_ml) < 0.05 * reference_ml


def test_orientation_does_not_change_the_answer(shared_data):
    image, _, _ = _cip(shared_data)
    flipped = sitk.Flip(image, [True, False, True])  # same anatomy, reversed x and z storage order
    a = sitk.GetArrayFromImage(segment(image, device="cpu").lungs)
    b = sitk.GetArrayFromImage(segment(flipped, device="cpu").lungs)
    assert np.array_equal(a, b[::-1, :, ::-1])


def _generated_case(shared_data):
    """dlwpt (held out of training), 40 slices, a known bilateral GGO/consolidation lesion.

    The patient's own mass (a declared finding of the background) lies in these slices and is left
    out of both fractions, as in the validation set.
    """
    image = read_volume(shared_data("dlwpt-chest-ct-dicom") / "2-LUNG_3.0_B70f-04083")
    image = image[:, :, 30:70]
    hu, canon = canonical_array(image, dtype=np.float32)
    np.clip(hu, -1024, 3071, out=hu)
    lungs = segment_lungs(hu, canon.spacing_zyx).lungs
    plan = LesionPlan(
        diffuse=(
            DiffuseLesion(
                fraction=0.25,
                side=0,
                pattern=Pattern.MIXED,
                margin_mm=2.0,
                posterior=1.5,
                lower=1.0,
                peripheral=1.0,
                correlation_mm=25.0,
                halo_mm=5.0,
            ),
        ),
        seed=11,
    )
    lesioned = render(hu, lungs, canon.spacing_zyx, plan)
    scored = ~canon.forward(findings_mask(image, source("dlwpt").findings))
    assert not scored.all()
    true_fraction = 100 * ((lesioned.lesions > 0) & scored).sum() / ((lungs > 0) & scored).sum()
    assert 20 < true_fraction < 30
    test_image = sitk.GetImageFromArray(np.ascontiguousarray(canon.backward(np.rint(lesioned.hu).astype(np.int16))))
    test_image.CopyInformation(image)
    result = segment(test_image, device="cpu")
    pred_lungs = sitk.GetArrayFromImage(result.lungs)
    pred_lesions = sitk.GetArrayFromImage(result.lesions)
    scored_image = canon.backward(scored)
    fraction = 100 * ((pred_lesions > 0) & scored_image).sum() / ((pred_lungs > 0) & scored_image).sum()
    return canon.backward(lungs), canon.backward(lesioned.lesions), pred_lungs, pred_lesions, fraction - true_fraction


def test_generated_lesion_fraction(shared_data):
    ref_lungs, ref_lesions, pred_lungs, pred_lesions, error_pp = _generated_case(shared_data)
    assert dice(pred_lungs == 1, ref_lungs == 1) > 0.95 and dice(pred_lungs == 2, ref_lungs == 2) > 0.95
    assert dice(pred_lesions > 0, ref_lesions > 0) > 0.75
    # Both classes are found where they are.
    assert dice(pred_lesions == LesionLabel.CONSOLIDATION, ref_lesions == LesionLabel.CONSOLIDATION) > 0.6
    # Regression bound, not the target: v4 under-measures this mixed lesion by 4.75 pp (v3 5.1, v2 4.6, 4.3
    # with the mass counted; v1 4.0 then; target: < 3).
    assert abs(error_pp) < 6.0


@ACCEPTANCE_GAP
def test_generated_lesion_fraction_target(shared_data):
    *_, error_pp = _generated_case(shared_data)
    assert abs(error_pp) < 3.0


@pytest.fixture
def lidc_nodule(shared_data):
    """The shipped model on the LIDC-IDRI-0002 slab, scored by the real-data check's rules."""
    folder = shared_data("lidc-3slabs-nodule-outlines")
    return check_lidc_ggo(DataRoot(folder.parent), {"model": lambda image: segment(image, device="cpu")})["model"]


def test_lidc_ggo_nodule_is_found_as_ggo(lidc_nodule):
    # One GGO lesion touches the readers' outline, nothing of it is consolidation, nothing else in the slab.
    assert lidc_nodule["found_as_ggo"]
    assert lidc_nodule["nodule_as_consolidation"] == 0.0
    assert lidc_nodule["false_components"] == 0
    # Regression bound, not the target: v4 labels 33 % of the outline (44 % of the two-reader core) GGO.
    assert lidc_nodule["nodule_as_ggo"] > 0.25


@ACCEPTANCE_GAP
def test_lidc_ggo_nodule_is_covered(lidc_nodule):
    assert lidc_nodule["covered_as_ggo"]


def test_medseg_check_half(shared_data):
    """The 25 MedSeg slices no model was trained on (real COVID-19 appearance; MODEL_CARD.md, *Real CT checks*)."""
    folder = shared_data("medseg-covid-2d-train")
    # Single slices hold less lung than a volume: report them, do not refuse them (as the check does).
    settings = load_settings().segmentation.model_copy(update={"min_lung_volume_ml": 0.0})
    result = check_medseg(DataRoot(folder.parent), {"model": lambda image: segment(image, settings=settings)})
    check = result["model"]["check_half"]
    assert result["check_slices"] == 25 and check["failed_slices"] == 0
    # A property of the crops, not of the model: the body crop keeps every sizeable piece of these
    # tightly cropped images, so all of the reference lesion is within reach (59 % before lunglesion 0.6,
    # when the crop ended at the largest piece and edge-connected air was never lung).
    assert check["reference_lesion_in_field"] > 0.99
    # Regression bounds at the measured level (v4 since 0.6: 95 % of the reference lesion inside the
    # predicted lung, pooled lesion Dice 0.645, median per slice 0.682; before: 47 %, 0.541, 0.533;
    # classical 0.04).
    assert check["reference_lesion_in_lung"] > 0.9
    assert check["dice_lesion_pooled"] > 0.60
    assert check["dice_lesion_median_per_slice"] > 0.60


def test_real_lung_tumours_are_lung_and_consolidation(shared_data):
    """Four real NSCLC sub-volumes with manual GTVs (MODEL_CARD.md, *Real CT checks*).

    A tumour is a lesion inside the lung: the two large solid ones (359 and 123 mL) must be lung and
    mostly consolidation. Regression bounds at the measured level (v4: 78 % / 96 % consolidation,
    90 % / 99 % in lung; the small hilar pat_3 27 % lesion; the part-solid 6.5 mL pat_2 2 %, missed).
    """
    folder = shared_data("radiomics-phantom-nsclc-gtv")
    settings = load_settings().segmentation.model_copy(update={"min_lung_volume_ml": 0.0})
    result = check_nsclc_tumours(DataRoot(folder.parent), {"model": lambda image: segment(image, settings=settings)})
    for patient in ("pat_1", "pat_4"):
        record = result[patient]["model"]
        assert record["covered"] and record["gtv_in_lung"] > 0.85
        assert record["gtv_as_consolidation"] > 0.7 and record["gtv_as_consolidation"] > 5 * record["gtv_as_ggo"]
    assert result["pat_3"]["model"]["found"]
    assert result["model"]["found"] >= 3 and result["model"]["failed"] == 0


def test_a_field_of_view_that_cuts_through_the_lungs(shared_data):
    """A targeted reconstruction, a cropped export, a reconstruction circle: the lung they cut is still lung.

    Before lunglesion 0.6 such a lung was lost whole (left-lung Dice 0.000 for the lateral crop below,
    0.028 / 0.035 for the anterior one): its air reaches the edge of the image, and air connected to
    the edge was never lung.
    """
    image = read_volume(shared_data("dlwpt-chest-ct-dicom") / "2-LUNG_3.0_B70f-04083")[:, :, 30:70]
    full = sitk.GetArrayFromImage(segment(image, device="cpu").lungs)
    columns = np.flatnonzero((full == LungLabel.LEFT_LUNG).any(axis=(0, 1)))
    rows = np.flatnonzero((full > 0).any(axis=(0, 2)))
    assert columns[0] > 256  # this series stores the patient's left at high column indices
    cut = int(columns[0] + 0.5 * (columns[-1] - columns[0]))  # through the middle of the left lung
    lungs = sitk.GetArrayFromImage(segment(image[:cut, :, :], device="cpu").lungs)
    reference = full[:, :, :cut]
    # Measured: left 0.928 (87 % of the uncropped answer's left lung in the field kept), right 0.996.
    assert dice(lungs == LungLabel.LEFT_LUNG, reference == LungLabel.LEFT_LUNG) > 0.88
    assert dice(lungs == LungLabel.RIGHT_LUNG, reference == LungLabel.RIGHT_LUNG) > 0.98
    cut = int(rows[0] + 0.3 * (rows[-1] - rows[0]))  # both lungs cut anteriorly
    lungs = sitk.GetArrayFromImage(segment(image[:, cut:, :], device="cpu").lungs)
    reference = full[:, cut:, :]
    # Measured: right 0.977, left 0.990.
    for side in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        assert dice(lungs == side, reference == side) > 0.95
    # A reconstruction circle across both lungs, padded outside (-2000, as scanners store it): the
    # lungs' air reaches the padding, which reaches the image edge.
    radius = columns[0] + 0.6 * (columns[-1] - columns[0]) - 256
    yy, xx = np.mgrid[:512, :512]
    padding = (yy - 256) ** 2 + (xx - 256) ** 2 > radius**2
    array = sitk.GetArrayFromImage(image)
    array[:, padding] = -2000
    circled = sitk.GetImageFromArray(array)
    circled.CopyInformation(image)
    lungs = sitk.GetArrayFromImage(segment(circled, device="cpu").lungs)
    reference = np.where(padding, 0, full)
    # Measured: right 0.857, left 0.816 (before lunglesion 0.6: 0.021 / 0.027).
    for side in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        assert dice(lungs == side, reference == side) > 0.75


def test_a_volume_without_lungs_is_refused():
    image = sitk.GetImageFromArray(np.full((20, 64, 64), 40, np.int16))
    image.SetSpacing((5.0, 5.0, 5.0))
    with pytest.raises(SegmentationError) as info:
        segment(image, device="cpu")
    assert info.value.code is ErrorCode.NO_LUNG_FOUND


def test_a_2d_image_is_refused():
    with pytest.raises(SegmentationError) as info:
        segment(sitk.Image(32, 32, sitk.sitkInt16), device="cpu")
    assert info.value.code is ErrorCode.SEGMENTATION_FAILED


def _lung_base_scan(shared_data):
    """Lung bases and upper abdomen, 3 mm (TotalSegmentator's example CT) with its lung output as reference.

    Returns the right and left reference lungs, the model's lung and lesion labels (all in the file's array
    order) and the volume of one voxel in mL.
    """
    folder = shared_data("totalsegmentator-tests")
    image = sitk.ReadImage(str(folder / "example_ct_sm.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg.nii.gz")))
    right = (labels >= 12) & (labels <= 14)  # TotalSegmentator "total": right upper, middle, lower lobe
    left = (labels == 10) | (labels == 11)  # left upper, lower lobe
    result = segment(image, device="cpu")
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    return right, left, sitk.GetArrayFromImage(result.lungs), sitk.GetArrayFromImage(result.lesions), voxel_ml


def _below_the_base(right, left, margin_slices: int = 2):
    """Slices more than ``margin_slices`` below the lowest reference lung slice.

    The file stores its slices from inferior to superior (z direction +1, lungs in the last slices),
    so "below" is a lower array index.
    """
    lowest = int(np.nonzero((right | left).any(axis=(1, 2)))[0].min())
    below = np.zeros(right.shape, bool)
    below[: max(0, lowest - margin_slices)] = True
    return below


def test_lung_base_scan(shared_data):
    right, left, lungs, lesions, ml = _lung_base_scan(shared_data)
    # The lung bases the reference (another model's output, not a manual mask) finds are found, on their side.
    assert ((lungs == LungLabel.RIGHT_LUNG) & right).sum() > 0.9 * right.sum()
    assert ((lungs == LungLabel.LEFT_LUNG) & left).sum() > 0.9 * left.sum()
    assert ((lungs == LungLabel.LEFT_LUNG) & right).sum() < 0.02 * right.sum()
    assert ((lungs == LungLabel.RIGHT_LUNG) & left).sum() < 0.02 * left.sum()
    assert not (lesions[lungs == 0]).any()
    # v3 took 160 mL of gas and faeces in the colon below the left hemidiaphragm for left lung and reported
    # 78 mL of lesion there; v4, trained with lung-free abdomen (of this patient, on other slices) as
    # negatives, has 12.6 mL of lung and 2.7 mL of lesion outside the reference lung (MODEL_CARD.md,
    # "Known limitations": bowel gas at the lung base).
    outside = ~(right | left)
    assert ((lungs > 0) & outside).sum() * ml < 25
    assert ((lesions > 0) & outside).sum() * ml < 10


def test_lung_base_scan_no_lung_below_the_base(shared_data):
    right, left, lungs, _, ml = _lung_base_scan(shared_data)
    assert ((lungs > 0) & _below_the_base(right, left)).sum() * ml < 1.0


def test_a_pelvis_scan_has_no_lung(shared_data):
    """20 slices of pelvis (no lung in the field of view) are refused, not measured on bowel gas."""
    folder = shared_data("totalsegmentator-tests") / "example_ct_dicom"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    assert image.GetSize() == (512, 512, 20)
    with pytest.raises(SegmentationError) as info:  # v3 measured 14 mL of lung and 10 mL of lesion here
        segment(image, device="cpu")
    assert info.value.code is ErrorCode.NO_LUNG_FOUND
