"""Synthetic series written the way archives hold them come back with exact geometry and HU."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless

from pipeline.errors import WarningCode
from pipeline.ingest import index_inputs, load_scan
from pipeline.synthetic import (
    FileNaming,
    Geometry,
    Patient,
    PixelEncoding,
    Quirks,
    Series,
    Study,
    write_ct_series,
    write_enhanced_ct,
)

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def only_selected(result):
    (candidate,) = result.selected
    return candidate


def array(scan) -> np.ndarray:
    return sitk.GetArrayFromImage(scan.image)


def test_shuffled_unsuffixed_files_are_ordered_by_position(tmp_series_dir, phantom_hu, settings):
    geometry = Geometry(spacing=(0.75, 0.8, 5.0), origin=(-12.0, -13.0, -50.0))
    written = write_ct_series(
        tmp_series_dir,
        phantom_hu,
        geometry=geometry,
        quirks=Quirks(naming=FileNaming.SHUFFLED, suffix="", reverse_instance_numbers=True),
        seed=5,
    )
    # The file names really are out of order (so sorting by name would be wrong).
    by_name = sorted(written.paths, key=lambda p: p.name)
    z_by_name = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in by_name]
    assert z_by_name != sorted(z_by_name)
    assert all(p.suffix == "" for p in written.paths)

    result = index_inputs([tmp_series_dir], settings=settings)
    candidate = only_selected(result)
    assert candidate.error_code is None
    assert candidate.size == (32, 32, 20)
    scan = load_scan(candidate, settings=settings)
    image = scan.image
    assert image.GetPixelID() == sitk.sitkInt16
    assert image.GetSize() == (32, 32, 20)
    assert image.GetSpacing() == pytest.approx((0.75, 0.8, 5.0), abs=1e-9)
    assert image.GetOrigin() == pytest.approx((-12.0, -13.0, -50.0), abs=1e-9)
    assert image.GetDirection() == pytest.approx(IDENTITY, abs=1e-12)
    np.testing.assert_array_equal(array(scan), phantom_hu)


def test_reversed_slices_with_negative_spacing_between_slices(tmp_series_dir, phantom_hu, settings):
    # Written apex-down like the POPI series: z falls with the slice index, SpacingBetweenSlices < 0.
    geometry = Geometry(spacing=(0.7, 0.7, -4.5), origin=(-10.0, -10.0, 40.0))
    write_ct_series(
        tmp_series_dir, phantom_hu, geometry=geometry, quirks=Quirks(extra_elements={"SpacingBetweenSlices": -4.5})
    )
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=settings)), settings=settings)
    assert scan.image.GetSpacing() == pytest.approx((0.7, 0.7, 4.5), abs=1e-9)
    assert scan.image.GetOrigin() == pytest.approx((-10.0, -10.0, 40.0 - 19 * 4.5), abs=1e-9)
    assert scan.image.GetDirection() == pytest.approx(IDENTITY, abs=1e-12)
    np.testing.assert_array_equal(array(scan), phantom_hu[::-1])


def test_flipped_column_direction_keeps_lps_geometry(tmp_series_dir, phantom_hu, settings):
    geometry = Geometry(spacing=(0.9, 0.9, 5.0), origin=(5.0, 60.0, 10.0), column_direction=(0.0, -1.0, 0.0))
    write_ct_series(tmp_series_dir, phantom_hu, geometry=geometry)
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=settings)), settings=settings)
    # Row along +x, columns along -y, slices along row x column = -z.
    assert scan.image.GetDirection() == pytest.approx((1, 0, 0, 0, -1, 0, 0, 0, -1), abs=1e-12)
    assert scan.image.GetOrigin() == pytest.approx((5.0, 60.0, 10.0), abs=1e-9)
    np.testing.assert_array_equal(array(scan), phantom_hu)
    # The voxel [k, j, i] sits where the writer put it.
    assert scan.image.TransformIndexToPhysicalPoint((3, 4, 5)) == pytest.approx((5.0 + 2.7, 60.0 - 3.6, 10.0 - 25.0))


def test_slope_and_intercept_apply_per_slice(tmp_series_dir, phantom_hu, settings):
    n = phantom_hu.shape[0]
    slopes = tuple([1.0, 0.5, 0.25, 1.0][k % 4] for k in range(n))
    intercepts = tuple([-1024.0, -1000.0, -2000.0, 0.0][k % 4] for k in range(n))
    encoding = PixelEncoding(slopes=slopes, intercepts=intercepts, pixel_representation=1)
    written = write_ct_series(tmp_series_dir, phantom_hu, encoding=encoding)
    # The stored values really differ between slices of equal HU.
    stored = [pydicom.dcmread(p).pixel_array for p in written.paths[:3]]
    assert not np.array_equal(stored[0], stored[1])
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=settings)), settings=settings)
    np.testing.assert_array_equal(array(scan), phantom_hu)


def test_padding_out_of_field_and_metal_are_mapped(tmp_series_dir, phantom_hu, settings, overrides):
    hu = phantom_hu.copy()
    hu[:, 0, :] = -3024  # GE-style out-of-field value (not padding): below hu.out_of_fov_below_hu
    hu[:, 1, :5] = -1050  # noisy air: kept
    hu[:, 2, :4] = 4000  # metal: clipped at hu.clip_max_hu
    yy, xx = np.mgrid[:32, :32]
    outside_circle = (yy - 15.5) ** 2 + (xx - 15.5) ** 2 > 16**2
    mask = np.broadcast_to(outside_circle, hu.shape)
    encoding = PixelEncoding(pixel_representation=1, intercepts=-1024.0, padding_value=-2000)
    write_ct_series(tmp_series_dir, hu, encoding=encoding, padding_mask=mask)

    expected = hu.copy()
    expected[hu < -1100] = -1000
    expected[hu > 3071] = 3071
    expected[mask] = -1000
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=settings)), settings=settings)
    np.testing.assert_array_equal(array(scan), expected)
    assert int(scan.extra["padding_voxels"]) == int(np.count_nonzero(mask | (hu < -1100)))

    # A different configured padding value lands in the same voxels.
    air = overrides(settings, hu={"padding_hu": -1024})
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=air)), settings=air)
    expected[mask | (hu < -1100)] = -1024
    np.testing.assert_array_equal(array(scan), expected)


def test_padding_value_written_unsigned_for_signed_pixels(tmp_series_dir, phantom_hu, settings):
    # LIDC: PixelPaddingValue US 63536 while the pixels are signed (it means -2000).
    hu = phantom_hu.copy()
    mask = np.zeros(hu.shape, dtype=bool)
    mask[:, :3, :] = True
    encoding = PixelEncoding(pixel_representation=1, intercepts=-1024.0, padding_value=63536)
    written = write_ct_series(tmp_series_dir, hu, encoding=encoding, padding_mask=mask)
    ds = pydicom.dcmread(written.paths[0])
    assert ds["PixelPaddingValue"].VR == "US" and ds.PixelPaddingValue == 63536
    assert int(ds.pixel_array[0, 0]) == -2000
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=settings)), settings=settings)
    expected = hu.copy()
    expected[mask] = -1000
    np.testing.assert_array_equal(array(scan), expected)


def test_padding_range_limit(tmp_series_dir, phantom_hu, settings):
    hu = phantom_hu.copy()
    hu[:, :2, :] = -1010  # stored 14 with intercept -1024: inside the padding range 0..20
    encoding = PixelEncoding(pixel_representation=0, intercepts=-1024.0, padding_value=0, padding_range_limit=20)
    write_ct_series(tmp_series_dir, hu, encoding=encoding)
    scan = load_scan(only_selected(index_inputs([tmp_series_dir], settings=settings)), settings=settings)
    expected = hu.copy()
    expected[hu <= -1004] = -1000  # stored 0..20 = HU -1024..-1004
    np.testing.assert_array_equal(array(scan), expected)


@pytest.mark.parametrize("transfer_syntax", [ImplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless])
@pytest.mark.parametrize("pixel_representation", [0, 1])
def test_transfer_syntaxes_decode_exactly(tmp_series_dir, phantom_hu, settings, transfer_syntax, pixel_representation):
    encoding = PixelEncoding(transfer_syntax=transfer_syntax, pixel_representation=pixel_representation)
    written = write_ct_series(tmp_series_dir, phantom_hu[:16], encoding=encoding)
    assert pydicom.dcmread(written.paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == transfer_syntax
    candidate = only_selected(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.transfer_syntax_uids == (transfer_syntax,)
    np.testing.assert_array_equal(array(load_scan(candidate, settings=settings)), phantom_hu[:16])


def test_enhanced_multiframe_with_shuffled_frames_and_per_frame_rescale(tmp_path, phantom_hu, permissive):
    settings = permissive  # 20 x 1.25 mm is less than a chest
    n = phantom_hu.shape[0]
    order = [int(k) for k in np.random.default_rng(11).permutation(n)]
    encoding = PixelEncoding(slopes=tuple(0.5 if k % 2 else 1.0 for k in range(n)), intercepts=-1024.0)
    geometry = Geometry(spacing=(0.6, 0.65, 1.25), origin=(-9.0, -11.0, 3.0))
    path = tmp_path / "enhanced" / "volume.dcm"
    write_enhanced_ct(path, phantom_hu, geometry=geometry, encoding=encoding, frame_order=order)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2.1" and int(ds.NumberOfFrames) == n

    candidate = only_selected(index_inputs([path.parent], settings=settings))
    assert (candidate.n_files, candidate.n_images) == (1, n)
    scan = load_scan(candidate, settings=settings)
    assert scan.image.GetSpacing() == pytest.approx((0.6, 0.65, 1.25), abs=1e-9)
    assert scan.image.GetOrigin() == pytest.approx((-9.0, -11.0, 3.0), abs=1e-9)
    np.testing.assert_array_equal(array(scan), phantom_hu)


def test_metadata_of_the_scan(tmp_series_dir, phantom_hu, settings):
    patient = Patient(patient_id="P-042")
    study = Study(description="CT THORAX")
    series = Series(series_number=7, description="THORAX 1.0 B31f", kernel="B31f", contrast_agent="Iomeron")
    written = write_ct_series(
        tmp_series_dir, phantom_hu, patient=patient, study=study, series=series, geometry=Geometry(spacing=(1, 1, 5))
    )
    candidate = only_selected(index_inputs([tmp_series_dir], settings=settings))
    meta = load_scan(candidate, settings=settings).meta
    assert meta.scan_id == candidate.scan_id and len(meta.scan_id) == 12
    assert (meta.patient_id, meta.study_uid, meta.series_uid) == ("P-042", written.study_uid, written.series_uid)
    assert (meta.series_number, meta.series_description, meta.kernel) == (7, "THORAX 1.0 B31f", "B31f")
    assert meta.study_datetime.isoformat() == "2020-03-15T10:30:00"
    assert meta.acquisition_datetime.isoformat() == "2020-03-15T10:35:00"
    assert meta.slice_thickness_mm == 5.0
    assert (meta.size, meta.spacing_mm, meta.n_files) == ((32, 32, 20), (1.0, 1.0, 5.0), 20)
    assert sorted(meta.source_files) == sorted(written.paths)
    assert meta.contrast_agent == "Iomeron" and meta.study_description == "CT THORAX"
    assert meta.selection_reasons and meta.selection_reasons[0].startswith("selected:")
    assert meta.warnings == ()


def test_scan_id_is_stable_and_independent_of_location(tmp_path, phantom_hu, settings):
    write_ct_series(tmp_path / "a", phantom_hu)
    write_ct_series(tmp_path / "b" / "deeper", phantom_hu)
    first = index_inputs([tmp_path / "a"], settings=settings).candidates[0].scan_id
    again = index_inputs([tmp_path / "a"], settings=settings).candidates[0].scan_id
    moved = index_inputs([tmp_path / "b"], settings=settings).candidates[0].scan_id
    assert first == again == moved


def test_duplicate_copies_of_a_series_are_ignored(tmp_path, phantom_hu, settings):
    write_ct_series(tmp_path / "export1", phantom_hu)
    write_ct_series(tmp_path / "export2", phantom_hu)
    result = index_inputs([tmp_path], settings=settings)
    candidate = only_selected(result)
    assert candidate.n_files == 20
    assert [w.code for w in candidate.warnings] == [WarningCode.FILES_SKIPPED]
    np.testing.assert_array_equal(array(load_scan(candidate, settings=settings)), phantom_hu)


def test_candidates_travel_to_worker_processes(tmp_series_dir, phantom_hu, settings):
    import pickle

    write_ct_series(tmp_series_dir, phantom_hu, quirks=Quirks(drop_slices=(3,)))
    result = index_inputs([tmp_series_dir], settings=settings)
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result
    np.testing.assert_array_equal(
        array(load_scan(copy.candidates[0], settings=settings)),
        array(load_scan(result.candidates[0], settings=settings)),
    )


def test_load_log_line_carries_patient_id_only_on_request(tmp_series_dir, phantom_hu, settings, caplog):
    import logging

    from pipeline.logs import PhiAwareFormatter

    write_ct_series(tmp_series_dir, phantom_hu, patient=Patient(patient_id="SECRET-991"))
    candidate = only_selected(index_inputs([tmp_series_dir], settings=settings))
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        load_scan(candidate, settings=settings)
    (record,) = [r for r in caplog.records if r.name == "pipeline.ingest.load"]
    plain = PhiAwareFormatter(show_phi=False).format(record)
    assert candidate.scan_id in plain and "SECRET-991" not in plain
    assert "SECRET-991" in PhiAwareFormatter(show_phi=True).format(record)
