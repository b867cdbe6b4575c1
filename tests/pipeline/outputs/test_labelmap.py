import numpy as np
import pytest

from pipeline.outputs.labelmap import COMBINED_LABELS, combine_labels, combined_image, split_combined


def test_combined_values_keep_side_and_lesion_class(case):
    _, seg = case
    import SimpleITK as sitk

    combined = sitk.GetArrayFromImage(combined_image(seg))
    lungs = sitk.GetArrayFromImage(seg.lungs)
    lesions = sitk.GetArrayFromImage(seg.lesions)
    assert combined[5, 15, 10] == 3  # GGO in the right lung
    assert combined[6, 25, 35] == 6  # consolidation in the left lung
    assert combined[3, 9, 5] == 1 and combined[3, 9, 27] == 2
    assert combined[0, 0, 0] == 0
    assert set(np.unique(combined)) == {0, 1, 2, 3, 6}
    back_lungs, back_lesions = split_combined(combined)
    np.testing.assert_array_equal(back_lungs, lungs)
    np.testing.assert_array_equal(back_lesions, lesions)


def test_all_six_combinations_round_trip():
    lungs = np.array([1, 2, 1, 2, 1, 2, 0], dtype=np.uint8)
    lesions = np.array([0, 0, 1, 1, 2, 2, 0], dtype=np.uint8)
    combined = combine_labels(lungs, lesions)
    assert combined.tolist() == [1, 2, 3, 4, 5, 6, 0]
    assert [label.index for label in COMBINED_LABELS] == [1, 2, 3, 4, 5, 6]
    back = split_combined(combined)
    assert back[0].tolist() == lungs.tolist() and back[1].tolist() == lesions.tolist()


def test_lesion_outside_lung_is_dropped():
    combined = combine_labels(np.array([0, 1], dtype=np.uint8), np.array([2, 2], dtype=np.uint8))
    assert combined.tolist() == [0, 5]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        combine_labels(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
