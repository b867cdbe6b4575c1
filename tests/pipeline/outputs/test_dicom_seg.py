"""DICOM SEG writing: identity of the SEG object and source headers highdicom would refuse."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
import SimpleITK as sitk

from pipeline.errors import ErrorCode, LunglesionError
from pipeline.outputs.dicom_seg import write_dicom_seg
from pipeline.synthetic import write_ct_series
from segmentation.result import LungSegmentation
from tests.pipeline.outputs.conftest import make_case


def _series(tmp_path: Path) -> tuple[list[Path], LungSegmentation]:
    """A written CT series and a segmentation on its grid (the labels of ``make_case``)."""
    ct, case = make_case()
    written = write_ct_series(tmp_path / "ct", sitk.GetArrayFromImage(ct))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in sorted(written.paths)])
    grid = reader.Execute()
    labels = []
    for image in (case.lungs, case.lesions):
        label = sitk.GetImageFromArray(sitk.GetArrayFromImage(image))
        label.CopyInformation(grid)
        labels.append(label)
    return list(written.paths), LungSegmentation(labels[0], labels[1], case.model_id, case.model_sha256)


def _uids(path: Path) -> tuple[str, str]:
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    return str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def test_seg_identity_follows_its_content_and_stays_the_same_for_the_same_content(tmp_path):
    files, seg = _series(tmp_path)
    first = write_dicom_seg(seg, source_files=files, destination=tmp_path / "a.dcm", software_version="t")
    again = write_dicom_seg(seg, source_files=files, destination=tmp_path / "b.dcm", software_version="t")
    assert _uids(first) == _uids(again)  # deterministic

    lesions = sitk.GetArrayFromImage(seg.lesions)
    lesions[lesions == 2] = 1  # another configuration calls the consolidation GGO
    changed = sitk.GetImageFromArray(lesions)
    changed.CopyInformation(seg.lesions)
    other = LungSegmentation(seg.lungs, changed, seg.model_id, seg.model_sha256)
    third = write_dicom_seg(other, source_files=files, destination=tmp_path / "c.dcm", software_version="t")
    series, instance = _uids(third)
    assert instance != _uids(first)[1]
    assert series != _uids(first)[0]


def test_invalid_source_dates_are_blanked_instead_of_failing_the_seg(tmp_path):
    files, seg = _series(tmp_path)
    for path in files:
        ds = pydicom.dcmread(str(path))
        ds.PatientBirthDate = "1961-07-14"  # not a DICOM DA (YYYYMMDD): highdicom refuses it
        ds.save_as(str(path))
    out = write_dicom_seg(seg, source_files=files, destination=tmp_path / "seg.dcm", software_version="t")
    written = pydicom.dcmread(str(out), stop_before_pixels=True)
    assert written.PatientBirthDate == ""
    assert written.StudyDate == pydicom.dcmread(str(files[0]), stop_before_pixels=True).StudyDate  # valid ones kept


def test_a_source_header_highdicom_refuses_is_an_output_error_that_quotes_no_header_value(tmp_path, monkeypatch):
    import highdicom as hd

    files, seg = _series(tmp_path)

    def refuse(*args, **kwargs):
        raise ValueError("Unable to convert 'Testperson^Secret' to 'PN' object")

    monkeypatch.setattr(hd.seg, "Segmentation", refuse)
    with pytest.raises(LunglesionError) as caught:
        write_dicom_seg(seg, source_files=files, destination=tmp_path / "seg.dcm", software_version="t")
    assert caught.value.code is ErrorCode.OUTPUT_WRITE_FAILED
    assert "Secret" not in caught.value.message
    assert not (tmp_path / "seg.dcm").exists()
