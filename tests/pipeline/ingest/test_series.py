"""Grouping files into series and stacks: shared UIDs, duplicate copies, concatenations."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from pipeline.errors import ErrorCode, WarningCode
from pipeline.ingest import index_inputs, load_scan
from pipeline.ingest.dicom_header import read_dicom_header
from pipeline.privacy import short_hash
from pipeline.synthetic import Geometry, Patient, PixelEncoding, Series, Study, write_ct_series, write_enhanced_ct

SHARED_SERIES_UID = "1.2.826.0.1.3680043.8.498.7001"


def array(scan) -> np.ndarray:
    return sitk.GetArrayFromImage(scan.image)


def codes(candidate) -> list[WarningCode]:
    return [w.code for w in candidate.all_warnings]


# --- one SeriesInstanceUID, several patients or studies ------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            (Patient(patient_id="PAT-ALPHA"), Study(study_uid="1.2.826.0.1.3680043.8.498.7100")),
            (Patient(patient_id="PAT-BETA"), Study(study_uid="1.2.826.0.1.3680043.8.498.7100")),
            id="two-patients-one-study-uid",
        ),
        pytest.param(
            (Patient(patient_id="PAT-ALPHA"), Study(study_uid="1.2.826.0.1.3680043.8.498.7101")),
            (Patient(patient_id="PAT-ALPHA"), Study(study_uid="1.2.826.0.1.3680043.8.498.7102")),
            id="one-patient-two-studies",
        ),
    ],
)
def test_series_uid_shared_by_patients_or_studies_is_split(tmp_path, phantom_hu, settings, caplog, first, second):
    series = Series(series_uid=SHARED_SERIES_UID)
    exports = {"export0": (*first, phantom_hu), "export1": (*second, phantom_hu[::-1].copy())}
    for folder, (patient, study, volume) in exports.items():
        write_ct_series(tmp_path / folder, volume, patient=patient, study=study, series=series)
    alone = index_inputs([tmp_path / "export0"], settings=settings).candidates[0]

    with caplog.at_level(logging.DEBUG, logger="pipeline.ingest"):
        result = index_inputs([tmp_path], settings=settings)

    assert len(result.candidates) == 2 and len({c.scan_id for c in result.candidates}) == 2
    for candidate in result.candidates:
        (folder,) = {path.rsplit("/", 2)[-2] for path in candidate.files}
        patient, study, volume = exports[folder]
        assert (candidate.patient_id, candidate.study_uid) == (patient.patient_id, study.study_uid)
        assert candidate.selected and candidate.series_uid == SHARED_SERIES_UID
        assert candidate.n_files == 20 and candidate.series_part == ""
        (split,) = [w for w in candidate.warnings if w.code is WarningCode.SERIES_SPLIT]
        assert "2 patient/study pairs" in split.message
        np.testing.assert_array_equal(array(load_scan(candidate, settings=settings)), volume)
    # An unshared series keeps the scan id it always had (runs are resumed by scan id).
    assert alone.scan_id == short_hash(f"dicom|{alone.study_uid}|{SHARED_SERIES_UID}|", length=12)
    assert WarningCode.SERIES_SPLIT not in codes(alone)
    # No patient identifier in warnings or log records.
    texts = [w.message for c in result.candidates for w in c.all_warnings] + [r.getMessage() for r in caplog.records]
    assert not any(pid in text for text in texts for pid in ("PAT-ALPHA", "PAT-BETA"))


# --- several copies of one image -------------------------------------------------------------


def _strip_pixels(ds: pydicom.Dataset) -> None:
    del ds.PixelData


def _lossy_copy(ds: pydicom.Dataset) -> None:
    noisy = ds.pixel_array.astype(np.int32) + np.random.default_rng(5).integers(-40, 40, ds.pixel_array.shape)
    ds.PixelData = np.clip(noisy, 0, 65535).astype(np.uint16).tobytes()
    ds.LossyImageCompression = "01"


def _undecodable_copy(ds: pydicom.Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no installed decoder
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])


@pytest.mark.parametrize(
    "spoil", [_strip_pixels, _lossy_copy, _undecodable_copy], ids=["no-pixels", "lossy", "undecodable"]
)
def test_best_copy_of_a_duplicated_image_is_kept(tmp_path, phantom_hu, settings, spoil):
    written = write_ct_series(tmp_path / "b_full", phantom_hu)
    (tmp_path / "a_copy").mkdir()  # sorts before the full series
    for k in (3, 11):
        ds = pydicom.dcmread(written.paths[k])
        spoil(ds)
        ds.save_as(tmp_path / "a_copy" / written.paths[k].name)

    result = index_inputs([tmp_path], settings=settings)
    (candidate,) = result.candidates
    assert result.skipped == ()
    assert candidate.selected and candidate.pixel_error is None
    assert sorted(candidate.files) == sorted(str(p) for p in written.paths)
    assert not candidate.lossy and candidate.transfer_syntax_uids == (pydicom.uid.ExplicitVRLittleEndian,)
    assert codes(candidate) == [WarningCode.FILES_SKIPPED]
    assert "2 duplicate copies" in candidate.warnings[0].message
    np.testing.assert_array_equal(array(load_scan(candidate, settings=settings)), phantom_hu)


# --- enhanced CT stored as a concatenation ---------------------------------------------------


def _write_concatenation(directory, volume, *, concatenation_uid: str | None, per_part: int) -> list:
    """One enhanced CT volume in parts of ``per_part`` frames (same series), shuffled frames and rescales."""
    geometry = Geometry(spacing=(0.6, 0.65, 1.25), origin=(-9.0, -11.0, 3.0))
    rng = np.random.default_rng(17)
    paths = []
    for part, start in enumerate(range(0, volume.shape[0], per_part)):
        chunk = volume[start : start + per_part]
        n = chunk.shape[0]
        encoding = PixelEncoding(slopes=tuple(0.5 if (start + k) % 3 else 1.0 for k in range(n)), intercepts=-1024.0)
        where = Geometry(
            spacing=geometry.spacing,
            origin=(geometry.origin[0], geometry.origin[1], geometry.origin[2] + start * geometry.spacing[2]),
        )
        path = directory / f"part{9 - part}.dcm"  # file names against the frame order
        order = [int(k) for k in rng.permutation(n)]
        write_enhanced_ct(path, chunk, geometry=where, encoding=encoding, frame_order=order)
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(part)])
        if concatenation_uid is not None:
            ds.ConcatenationUID = concatenation_uid
            ds.InConcatenationNumber = part + 1
            ds.InConcatenationTotalNumber = -(-volume.shape[0] // per_part)
            ds.ConcatenationFrameOffsetNumber = start
        ds.save_as(path)
        paths.append(path)
    return paths


def test_concatenation_parts_form_one_stack(tmp_path, phantom_hu, permissive):
    settings = permissive  # 20 x 1.25 mm is less than a chest
    concatenation = "1.2.826.0.1.3680043.8.498.7200"
    paths = _write_concatenation(tmp_path / "enhanced", phantom_hu, concatenation_uid=concatenation, per_part=7)
    assert {read_dicom_header(p).concatenation_uid for p in paths} == {concatenation}

    (candidate,) = index_inputs([tmp_path / "enhanced"], settings=settings).candidates
    assert candidate.selected and candidate.series_part == ""
    assert (candidate.n_files, candidate.n_images) == (len(paths), phantom_hu.shape[0])
    assert WarningCode.SERIES_SPLIT not in codes(candidate)
    scan = load_scan(candidate, settings=settings)
    assert scan.image.GetSpacing() == pytest.approx((0.6, 0.65, 1.25), abs=1e-9)
    assert scan.image.GetOrigin() == pytest.approx((-9.0, -11.0, 3.0), abs=1e-9)
    np.testing.assert_array_equal(array(scan), phantom_hu)


def test_multiframe_files_without_concatenation_stay_separate_stacks(tmp_path, phantom_hu, permissive):
    paths = _write_concatenation(tmp_path / "enhanced", phantom_hu, concatenation_uid=None, per_part=10)
    result = index_inputs([tmp_path / "enhanced"], settings=permissive)
    assert len(result.candidates) == len(paths) == 2
    assert all(WarningCode.SERIES_SPLIT in codes(c) for c in result.candidates)
    assert {c.error_code for c in result.candidates} == {None, ErrorCode.NOT_SELECTED}


def test_copy_with_same_quality_keeps_path_order(tmp_path, phantom_hu, settings):
    written = write_ct_series(tmp_path / "b", phantom_hu)
    (tmp_path / "a").mkdir()
    shutil.copy(written.paths[0], tmp_path / "a" / written.paths[0].name)
    (candidate,) = index_inputs([tmp_path], settings=settings).candidates
    assert str(tmp_path / "a" / written.paths[0].name) in candidate.files
    assert candidate.n_files == 20


def test_a_series_whose_images_disagree_on_keeping_the_acquisition_time_is_indexed(tmp_path, phantom_hu, settings):
    """Some images with AcquisitionTime, some without (a partial de-identification)."""
    from datetime import datetime

    written = write_ct_series(tmp_path / "ct", phantom_hu)
    for path in written.paths[::2]:
        ds = pydicom.dcmread(str(path))
        ds.AcquisitionTime = ""
        ds.save_as(str(path))
    (candidate,) = index_inputs([tmp_path / "ct"], settings=settings).candidates
    assert candidate.plan is not None and candidate.geometry_error is None
    assert isinstance(candidate.acquisition_datetime, datetime)  # the time that was kept
