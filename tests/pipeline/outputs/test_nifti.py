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


def test_the_shared_label_table_is_written_under_a_temporary_that_names_the_scan(tmp_path, case, monkeypatch):
    """A sharded run's clean-up keeps temporaries naming a scan: the shared dseg.tsv's must too."""
    from types import SimpleNamespace

    import pipeline.io.atomic as atomic
    from pipeline.batch.runner import _names_any, _remove_temporaries

    _, seg = case
    stem = "sub-P01_ses-1_acq-0123abcd4567"
    survivors = []
    real_atomic_path = atomic.atomic_path

    def atomic_path_with_cleanup(destination, *, tag=""):
        # Another part cleans the folder while this writer's temporary exists.
        context = real_atomic_path(destination, tag=tag)
        tmp = context.__enter__()
        scans = [SimpleNamespace(scan_id="0123abcd4567")]
        _remove_temporaries(tmp_path, keep=lambda name: _names_any(name, scans))
        survivors.append((destination.name, tmp.exists()))
        return _Entered(context, tmp)

    monkeypatch.setattr(atomic, "atomic_path", atomic_path_with_cleanup)
    write_nifti_mask(seg, folder=tmp_path, stem=stem)
    assert ("dseg.tsv", True) in survivors
    assert (tmp_path / "dseg.tsv").is_file()


class _Entered:
    """A context manager already entered (wraps the one ``atomic_path`` returned)."""

    def __init__(self, context, value):
        self.context, self.value = context, value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)
