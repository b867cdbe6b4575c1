import csv

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from pipeline.outputs.labelmap import combine_labels
from pipeline.outputs.nifti import bids_stem, write_nifti_mask


def test_bids_stem_keeps_only_alphanumeric_labels():
    assert bids_stem(subject="P-01", session="2025-03-01", acquisition="ab_12") == "sub-P01_ses-20250301_acq-ab12"
    assert bids_stem(subject="", session="x", acquisition="y").startswith("sub-x_")


def test_mask_round_trips_with_geometry_and_label_table(tmp_path, case):
    ct, seg = case
    path = write_nifti_mask(seg, folder=tmp_path, stem="sub-P01_ses-1_acq-a")
    assert path.name == "sub-P01_ses-1_acq-a_desc-lunglesion_dseg.nii.gz"
    back = sitk.ReadImage(str(path))
    expected = combine_labels(sitk.GetArrayFromImage(seg.lungs), sitk.GetArrayFromImage(seg.lesions))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)
    np.testing.assert_allclose(back.GetSpacing(), ct.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), ct.GetDirection(), atol=1e-6)
    # A second reader sees the same RAS placement: voxel (0,0,0) at LPS origin -> RAS (20, 18, -30).
    affine = nib.load(str(path)).affine
    np.testing.assert_allclose(affine[:3, 3], [20.0, 18.0, -30.0], atol=1e-4)
    with open(tmp_path / "dseg.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [row["name"] for row in rows] == [
        "right_lung",
        "left_lung",
        "right_ggo",
        "left_ggo",
        "right_consolidation",
        "left_consolidation",
    ]
    assert not list(tmp_path.glob(".tmp-*"))
