"""Geometry validation from headers: gaps, duplicates, tilt, orientation, mixed stacks."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from pipeline.errors import ErrorCode, IngestError, WarningCode
from pipeline.ingest import index_inputs, load_scan
from pipeline.ingest.settings import RepairPolicy
from pipeline.synthetic import Geometry, Quirks, Series, write_ct_series

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def single(result):
    (candidate,) = result.candidates
    return candidate


def codes(candidate):
    return [w.code for w in candidate.all_warnings]


def edit_file(path, **changes):
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


# --- missing slices ------------------------------------------------------------------------


def test_missing_slice_is_filled_by_interpolation(tmp_series_dir, phantom_hu, settings):
    write_ct_series(
        tmp_series_dir, phantom_hu, geometry=Geometry(spacing=(1.0, 1.0, 5.0)), quirks=Quirks(drop_slices=(7,))
    )
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.selected and candidate.n_files == 19
    assert candidate.size == (32, 32, 20) and candidate.spacing == pytest.approx((1.0, 1.0, 5.0))
    assert codes(candidate) == [WarningCode.SPACING_RESAMPLED]
    volume = sitk.GetArrayFromImage(load_scan(candidate, settings=settings).image)
    keep = [k for k in range(20) if k != 7]
    np.testing.assert_array_equal(volume[keep], phantom_hu[keep])
    expected = np.rint((phantom_hu[6].astype(np.float64) + phantom_hu[8]) / 2)
    np.testing.assert_array_equal(volume[7], expected)


def test_missing_slice_rejected_when_configured(tmp_series_dir, phantom_hu, settings, overrides):
    strict = overrides(settings, geometry={"on_irregular_spacing": "reject"})
    write_ct_series(tmp_series_dir, phantom_hu, quirks=Quirks(drop_slices=(7,)))
    candidate = single(index_inputs([tmp_series_dir], settings=strict))
    assert candidate.error_code is ErrorCode.SLICE_SPACING_INCONSISTENT and not candidate.selected
    assert "5 mm x17, 10 mm x1" in candidate.reason and "on_irregular_spacing" in candidate.reason
    assert candidate.plan is None
    with pytest.raises(IngestError) as raised:
        load_scan(candidate, settings=strict)
    assert raised.value.code is ErrorCode.SLICE_SPACING_INCONSISTENT


def test_gap_longer_than_allowed_is_rejected(tmp_series_dir, phantom_hu, settings):
    write_ct_series(tmp_series_dir, phantom_hu, quirks=Quirks(drop_slices=(7, 8, 9)))  # max_gap_slices is 2
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.SLICE_SPACING_INCONSISTENT
    assert "max_gap_slices" in candidate.reason


def drift_positions(paths, *, first_steps: int, step: float, later_step: float) -> np.ndarray:
    """Move the slices: ``first_steps`` steps of ``step`` mm, then steps of ``later_step`` mm."""
    steps = [step] * first_steps + [later_step] * (len(paths) - 1 - first_steps)
    offsets = np.concatenate([[0.0], np.cumsum(steps)])
    for k, (path, offset) in enumerate(zip(paths, offsets, strict=True)):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        edit_file(path, ImagePositionPatient=[x, y, z - k * step + offset])
    return offsets


@pytest.mark.parametrize("policy", list(RepairPolicy))
def test_slowly_drifting_steps_are_not_regular(tmp_series_dir, phantom_hu, settings, overrides, policy):
    # Every step is within the 10 % tolerance of the median (5 mm), but a uniform grid through
    # the first and last slice would put the middle ones almost 2 mm off.
    written = write_ct_series(tmp_series_dir, phantom_hu, geometry=Geometry(spacing=(1.0, 1.0, 5.0)))
    first_steps = 10
    offsets = drift_positions(list(written.paths), first_steps=first_steps, step=5.0, later_step=5.4)
    uniform = offsets[-1] / (len(offsets) - 1)
    assert np.abs(offsets - np.arange(len(offsets)) * uniform).max() > 1.5
    run = overrides(settings, geometry={"on_irregular_spacing": policy})
    candidate = single(index_inputs([tmp_series_dir], settings=run))
    if policy is RepairPolicy.REJECT:
        assert candidate.error_code is ErrorCode.SLICE_SPACING_INCONSISTENT and candidate.plan is None
        return
    assert candidate.selected and codes(candidate) == [WarningCode.SPACING_RESAMPLED]
    assert candidate.spacing[2] == pytest.approx(5.0)
    tolerance = max(run.geometry.spacing_tolerance_mm, run.geometry.spacing_tolerance_fraction * 5.0)
    grid = np.arange(candidate.size[2]) * candidate.spacing[2]
    volume = sitk.GetArrayFromImage(load_scan(candidate, settings=run).image)
    on_grid = 0
    for k, offset in enumerate(offsets):  # every source slice that lands on the grid is copied there
        nearest = int(np.argmin(np.abs(grid - offset)))
        if abs(grid[nearest] - offset) <= tolerance:
            np.testing.assert_array_equal(volume[nearest], phantom_hu[k])
            on_grid += 1
    assert on_grid > first_steps


def test_positions_off_a_straight_line_are_rejected(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    ds = pydicom.dcmread(written.paths[10], stop_before_pixels=True)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    edit_file(written.paths[10], ImagePositionPatient=[x + 3.0, y, z])
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.SLICE_SPACING_INCONSISTENT
    assert "straight line" in candidate.reason


# --- duplicates and acquisitions -----------------------------------------------------------------


def test_duplicate_positions_are_rejected(tmp_series_dir, phantom_hu, settings):
    write_ct_series(tmp_series_dir, phantom_hu, quirks=Quirks(duplicate_slices=(4, 5)))
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.DUPLICATE_POSITIONS
    assert "22 images share 20 distinct positions" in candidate.reason


def test_two_acquisitions_of_one_series_are_split(tmp_path, phantom_hu, settings):
    series = Series(series_uid="1.2.826.0.1.3680043.8.498.1001")
    write_ct_series(tmp_path / "first", phantom_hu, series=series, quirks=Quirks(acquisition_numbers=(1,) * 20))
    write_ct_series(
        tmp_path / "second", phantom_hu, series=series, quirks=Quirks(acquisition_numbers=(2,) * 20, uid_salt="b")
    )
    result = index_inputs([tmp_path], settings=settings)
    first, second = result.candidates
    assert (first.series_part, second.series_part) == ("acquisition 1", "acquisition 2")
    assert first.series_uid == second.series_uid == series.series_uid
    assert first.scan_id != second.scan_id
    assert WarningCode.SERIES_SPLIT in codes(first)
    assert first.selected and first.n_files == 20
    assert second.error_code is ErrorCode.NOT_SELECTED
    assert "equal on every rule" in second.reason


def test_acquisitions_kept_together_when_they_do_not_form_stacks(tmp_series_dir, phantom_hu, settings):
    # Every image its own acquisition at the same positions twice: no clean stacks, so duplicates.
    write_ct_series(
        tmp_series_dir,
        phantom_hu[:10],
        quirks=Quirks(duplicate_slices=tuple(range(10)), acquisition_numbers=tuple(range(10))),
    )
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.DUPLICATE_POSITIONS


# --- gantry tilt -----------------------------------------------------------------------------


def test_gantry_tilt_is_resampled_onto_an_axial_grid(tmp_series_dir, settings):
    tilt = 15.0
    k, j, i = np.meshgrid(np.arange(20), np.arange(32), np.arange(32), indexing="ij")
    hu = (100 + 3 * j + 5 * k).astype(np.int16)  # linear in the source index: interpolation is exact
    geometry = Geometry(spacing=(1.0, 1.0, 2.0), origin=(-16.0, -20.0, 0.0), tilt_deg=tilt)
    write_ct_series(tmp_series_dir, hu, geometry=geometry)
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.tilt_deg == pytest.approx(tilt, abs=1e-6)
    assert WarningCode.GANTRY_TILT_CORRECTED in codes(candidate)
    # Rows tilt by 15 degrees: 31 rows of 1 mm span 31*cos(15) = 29.94 mm in y -> 30 rows on the axial grid.
    assert candidate.size == (32, 30, 20)

    scan = load_scan(candidate, settings=settings)
    image = scan.image
    assert scan.meta.gantry_tilt_deg == pytest.approx(tilt, abs=1e-6)
    assert image.GetDirection() == pytest.approx(IDENTITY, abs=1e-9)
    assert image.GetOrigin() == pytest.approx((-16.0, -20.0, 0.0), abs=1e-9)
    assert image.GetSpacing() == pytest.approx((1.0, 1.0, 2.0), abs=1e-9)

    volume = sitk.GetArrayFromImage(image).astype(np.float64)
    kk, jj, _ = np.meshgrid(np.arange(20), np.arange(30), np.arange(32), indexing="ij")
    t = math.radians(tilt)
    src_j = jj / math.cos(t)  # source row of the output voxel
    src_k = kk + jj * math.tan(t) / 2.0  # source slice (2 mm steps)
    expected = 100 + 3 * src_j + 5 * src_k
    inside = (src_j <= 31) & (src_k <= 19)
    outside = src_k > 19.5
    assert inside.sum() > 10000 and outside.sum() > 500
    assert np.abs(volume[inside] - expected[inside]).max() <= 0.5 + 1e-3  # exact up to rounding to HU
    assert np.all(volume[outside] == -1000)


def test_gantry_tilt_rejected_when_configured(tmp_series_dir, phantom_hu, settings, overrides):
    write_ct_series(tmp_series_dir, phantom_hu, geometry=Geometry(tilt_deg=12.0))
    strict = overrides(settings, geometry={"on_gantry_tilt": "reject"})
    candidate = single(index_inputs([tmp_series_dir], settings=strict))
    assert candidate.error_code is ErrorCode.GANTRY_TILT and "12.0 degrees" in candidate.reason


def test_tilt_beyond_the_maximum_is_rejected(tmp_series_dir, phantom_hu, settings):
    write_ct_series(tmp_series_dir, phantom_hu, geometry=Geometry(tilt_deg=32.0))
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.GANTRY_TILT and "max_tilt_deg" in candidate.reason


# --- orientation, spacing, missing elements --------------------------------------------------------


def test_non_orthonormal_orientation_is_rejected(tmp_series_dir, phantom_hu, settings):
    write_ct_series(tmp_series_dir, phantom_hu, geometry=Geometry(column_direction=(0.02, 1.0, 0.0)))
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.NON_ORTHONORMAL_DIRECTION


def test_missing_position_is_rejected(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    edit_file(written.paths[3], ImagePositionPatient=None)
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.MISSING_GEOMETRY
    assert "1 of 20 images lack ImagePositionPatient" in candidate.reason


def test_inconsistent_pixel_spacing_is_rejected(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    edit_file(written.paths[3], PixelSpacing=[0.75, 0.75])
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.INCONSISTENT_PIXEL_SPACING


def test_mixed_image_sizes_are_split_or_rejected(tmp_path, phantom_hu, settings, overrides):
    series = Series(series_uid="1.2.826.0.1.3680043.8.498.1002")
    write_ct_series(tmp_path / "big", phantom_hu, series=series)
    write_ct_series(tmp_path / "small", phantom_hu[:, :24, :24], series=series, quirks=Quirks(uid_salt="small"))
    split = index_inputs([tmp_path], settings=settings)
    assert sorted(c.series_part for c in split.candidates) == ["24x24 pixels", "32x32 pixels"]
    assert sorted(c.size for c in split.candidates) == [(24, 24, 20), (32, 32, 20)]
    assert len(split.selected) == 1

    strict = overrides(settings, geometry={"split_mixed_series": False})
    candidate = single(index_inputs([tmp_path], settings=strict))
    assert candidate.error_code is ErrorCode.MIXED_IMAGE_SIZES and candidate.n_files == 40


def test_mixed_orientations_are_split_or_rejected(tmp_path, phantom_hu, settings, overrides):
    series = Series(series_uid="1.2.826.0.1.3680043.8.498.1003")
    write_ct_series(tmp_path / "axial", phantom_hu, series=series)
    coronal = Geometry(column_direction=(0.0, 0.0, -1.0), origin=(-11.0, -10.0, 50.0))
    write_ct_series(tmp_path / "coronal", phantom_hu, series=series, geometry=coronal, quirks=Quirks(uid_salt="c"))
    split = index_inputs([tmp_path], settings=settings)
    by_part = {c.series_part: c for c in split.candidates}
    assert set(by_part) == {"orientation 1 of 2", "orientation 2 of 2"}
    assert [c.error_code for c in split.candidates if not c.selected] == [ErrorCode.NOT_AXIAL]
    assert split.selected[0].slice_normal == pytest.approx((0.0, 0.0, 1.0))

    strict = overrides(settings, geometry={"split_mixed_series": False})
    candidate = single(index_inputs([tmp_path], settings=strict))
    assert candidate.error_code is ErrorCode.MIXED_ORIENTATIONS


def test_single_image_uses_slice_thickness_as_spacing(tmp_series_dir, phantom_hu, settings, permissive):
    write_ct_series(tmp_series_dir, phantom_hu[:1], series=Series(slice_thickness=1.25))
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.TOO_FEW_SLICES
    assert "1 image covering" in candidate.reason
    loaded = load_scan(single(index_inputs([tmp_series_dir], settings=permissive)), settings=permissive)
    assert loaded.image.GetSize() == (32, 32, 1) and loaded.image.GetSpacing()[2] == 1.25
    np.testing.assert_array_equal(sitk.GetArrayFromImage(loaded.image), phantom_hu[:1])


def test_too_little_coverage(tmp_series_dir, phantom_hu, settings):
    write_ct_series(tmp_series_dir, phantom_hu, geometry=Geometry(spacing=(0.7, 0.7, 2.0)))
    candidate = single(index_inputs([tmp_series_dir], settings=settings))
    assert candidate.error_code is ErrorCode.TOO_FEW_SLICES
    assert "20 images covering 40 mm" in candidate.reason
