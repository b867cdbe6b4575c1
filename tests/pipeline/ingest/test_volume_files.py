"""NIfTI / NRRD / MetaImage inputs: read as HU, geometry kept, masks refused."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest import SourceKind, index_inputs, load_scan

DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # rotated in-plane, still axial


def write_volume(path, values, *, spacing=(0.8, 0.9, 4.0), origin=(-10.0, 20.0, -30.0), direction=DIRECTION):
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("name", ["case01.nii.gz", "case01.nii", "case01.nrrd", "case01.mha", "case01.mhd"])
def test_volume_file_round_trip(tmp_path, phantom_hu, settings, name):
    path = write_volume(tmp_path / "vols" / name, phantom_hu)
    result = index_inputs([tmp_path / "vols"], settings=settings)
    assert result.skipped == ()  # the .raw next to a .mhd is part of it, not a foreign file
    (candidate,) = result.candidates
    assert candidate.source_kind is SourceKind.VOLUME_FILE
    assert candidate.selected and candidate.patient_id == "case01"
    assert candidate.size == (32, 32, 20)
    scan = load_scan(candidate, settings=settings)
    assert scan.image.GetSpacing() == pytest.approx((0.8, 0.9, 4.0), abs=1e-6)
    assert scan.image.GetOrigin() == pytest.approx((-10.0, 20.0, -30.0), abs=1e-6)
    assert scan.image.GetDirection() == pytest.approx(DIRECTION, abs=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(scan.image), phantom_hu)
    assert scan.meta.source_files == (path,)


def test_float_volume_is_rounded_mapped_and_clipped(tmp_path, phantom_hu, settings):
    values = phantom_hu.astype(np.float32) + 0.3
    values[0, 0, :4] = -3024.0
    values[0, 1, :4] = 5000.0
    path = write_volume(tmp_path / "f.nrrd", values)
    (candidate,) = index_inputs([path], settings=settings).candidates
    volume = sitk.GetArrayFromImage(load_scan(candidate, settings=settings).image)
    expected = np.rint(values).astype(np.int64)
    expected[expected < -1100] = -1000
    expected[expected > 3071] = 3071
    np.testing.assert_array_equal(volume, expected)


def test_scan_id_hashes_the_path_below_the_input(tmp_path, phantom_hu, settings):
    write_volume(tmp_path / "one" / "sub" / "a.nii.gz", phantom_hu)
    write_volume(tmp_path / "two" / "sub" / "a.nii.gz", phantom_hu)
    first = index_inputs([tmp_path / "one"], settings=settings).candidates[0]
    second = index_inputs([tmp_path / "two"], settings=settings).candidates[0]
    both = index_inputs([tmp_path / "one", tmp_path / "two" / "sub" / "a.nii.gz"], settings=settings)
    assert first.scan_id == second.scan_id  # same relative path "sub/a.nii.gz"
    assert len({c.scan_id for c in both.candidates}) == 2  # "sub/a.nii.gz" vs "a.nii.gz"


def test_masks_and_label_maps_are_not_ct(tmp_path, phantom_hu, settings):
    mask = write_volume(tmp_path / "lungs_mask.nii.gz", (phantom_hu < -500).astype(np.uint8))
    (candidate,) = index_inputs([mask], settings=settings).candidates
    assert candidate.error_code is ErrorCode.NOT_CT and "label map" in candidate.reason

    labels = write_volume(tmp_path / "labels.nii.gz", (phantom_hu < -500).astype(np.int16) * 3)
    (candidate,) = index_inputs([labels], settings=settings).candidates
    assert candidate.selected  # signed voxels: only the values can tell
    with pytest.raises(IngestError) as raised:
        load_scan(candidate, settings=settings)
    assert raised.value.code is ErrorCode.NOT_CT and "no air" in raised.value.message


def test_unreadable_and_wrong_dimension_volumes(tmp_path, settings):
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti at all")
    flat = sitk.GetImageFromArray(np.zeros((8, 8), dtype=np.int16))
    sitk.WriteImage(flat, str(tmp_path / "flat.nrrd"))
    result = index_inputs([tmp_path], settings=settings)
    assert result.candidates == ()
    codes = {issue.path.rsplit("/", 1)[-1]: issue.code for issue in result.skipped}
    assert codes == {"broken.nii.gz": ErrorCode.VOLUME_FILE_UNREADABLE, "flat.nrrd": ErrorCode.VOLUME_FILE_UNREADABLE}


def test_sagittal_volume_is_not_axial(tmp_path, phantom_hu, settings):
    sagittal = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # third axis along x
    path = write_volume(tmp_path / "sag.mha", phantom_hu, direction=sagittal)
    (candidate,) = index_inputs([path], settings=settings).candidates
    assert candidate.error_code is ErrorCode.NOT_AXIAL


def test_same_relative_path_under_two_inputs_gets_two_scan_ids(tmp_path, phantom_hu, settings):
    values = {"patientA": phantom_hu, "patientB": phantom_hu[::-1].copy()}
    for name, volume in values.items():
        write_volume(tmp_path / "export" / name / "ct.nii.gz", volume)
    inputs = [tmp_path / "export" / name for name in values]

    result = index_inputs(inputs, settings=settings)
    assert len(result.candidates) == 2 and len({c.scan_id for c in result.candidates}) == 2
    assert sorted(c.files for c in result.candidates) == [(str(p / "ct.nii.gz"),) for p in inputs]
    for candidate in result.candidates:
        assert candidate.selected
        owner = candidate.files[0].rsplit("/", 2)[-2]
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(load_scan(candidate, settings=settings).image), values[owner]
        )
    # The clash is resolved the way indexing the common parent folder names the files ...
    parent = index_inputs([tmp_path / "export"], settings=settings)
    assert {(c.files, c.scan_id) for c in parent.candidates} == {(c.files, c.scan_id) for c in result.candidates}
    # ... and a file without a clash keeps its id.
    (alone,) = index_inputs([inputs[0]], settings=settings).candidates
    assert alone.scan_id == index_inputs([inputs[1]], settings=settings).candidates[0].scan_id
    assert alone.scan_id not in {c.scan_id for c in result.candidates}


def test_same_folder_and_file_names_under_two_inputs_get_two_scan_ids(tmp_path, phantom_hu, settings):
    inputs = [tmp_path / site / "patientA" for site in ("site1", "site2")]
    for folder in inputs:
        write_volume(folder / "ct.nii.gz", phantom_hu)
    write_volume(tmp_path / "site3" / "ct.nii.gz", phantom_hu)
    result = index_inputs([*inputs, tmp_path / "site3"], settings=settings)
    assert len({c.scan_id for c in result.candidates}) == 3
    assert {c.files[0] for c in result.candidates} == {str(p / "ct.nii.gz") for p in [*inputs, tmp_path / "site3"]}
