"""Bad files are skipped and reported with a code; the rest of the folder is still ingested."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from pipeline.errors import ErrorCode, IngestError, WarningCode
from pipeline.ingest import index_inputs, load_scan
from pipeline.ingest.dicom_header import read_dicom_header
from pipeline.synthetic import PixelEncoding, write_ct_series


def issues_by_name(result):
    return {issue.path.rsplit("/", 1)[-1]: issue for issue in result.skipped}


def test_garbage_truncated_and_foreign_files_are_skipped(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    data = written.paths[7].read_bytes()
    (tmp_series_dir / "notes.txt").write_text("scanner log\n")
    (tmp_series_dir / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_series_dir / "empty.dcm").write_bytes(b"")
    (tmp_series_dir / "cut_header.dcm").write_bytes(data[:600])
    (tmp_series_dir / "only_meta.dcm").write_bytes(data[:200])
    written.paths[7].write_bytes(data[: len(data) - 500])  # a slice of the series, cut inside its pixels
    nested = tmp_series_dir / "sub" / "deeper"
    nested.mkdir(parents=True)
    (nested / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (tmp_series_dir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")

    result = index_inputs([tmp_series_dir], settings=settings)
    issues = issues_by_name(result)
    assert issues["notes.txt"].code is ErrorCode.NOT_DICOM
    assert issues["random.bin"].code is ErrorCode.NOT_DICOM
    assert issues["image.jpg"].code is ErrorCode.NOT_DICOM
    assert issues["empty.dcm"].code is ErrorCode.TRUNCATED_FILE
    assert issues["cut_header.dcm"].code is ErrorCode.TRUNCATED_FILE
    assert issues["only_meta.dcm"].code is ErrorCode.TRUNCATED_FILE
    truncated = issues[written.paths[7].name]
    assert truncated.code is ErrorCode.TRUNCATED_FILE and "of the 2048 bytes of its pixel data" in truncated.message
    assert ".DS_Store" not in issues  # hidden files are ignored (index.skip_hidden)
    assert result.n_files_seen == 26

    # The series is still there, the lost slice interpolated back.
    (candidate,) = result.candidates
    assert candidate.selected and candidate.n_files == 19
    assert WarningCode.SPACING_RESAMPLED in [w.code for w in candidate.all_warnings]
    # ... and it says why a slice was missing: it lost a file it could not read
    (lost,) = [w for w in candidate.all_warnings if w.code is WarningCode.FILES_SKIPPED]
    assert (
        lost.message
        == "1 file of this series could not be read (1 TRUNCATED_FILE) and was left out (listed in errors.csv)"
    )
    assert truncated.series_uid == candidate.series_uid
    volume = sitk.GetArrayFromImage(load_scan(candidate, settings=settings).image)
    np.testing.assert_array_equal(volume[:7], phantom_hu[:7])


def test_raw_dataset_without_preamble_is_read(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    for path in written.paths:  # ACR-NEMA style: no preamble, no file meta
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(path, implicit_vr=True, little_endian=True)
        assert path.read_bytes()[128:132] != b"DICM"
    (candidate,) = index_inputs([tmp_series_dir], settings=settings).candidates
    assert candidate.selected
    np.testing.assert_array_equal(sitk.GetArrayFromImage(load_scan(candidate, settings=settings).image), phantom_hu)


def strip_pixels(path, *, private_blob: bool) -> None:
    ds = pydicom.dcmread(path)
    del ds.PixelData
    if private_blob:
        block = ds.private_block(0x07A1, "ELSCINT1", create=True)
        block.add_new(0x0A, "OB", b"\x01" * 900)  # proprietary compressed pixels
    ds.save_as(path)


@pytest.mark.parametrize(
    ("private_blob", "code"), [(True, ErrorCode.PRIVATE_PIXEL_DATA), (False, ErrorCode.NO_PIXEL_DATA)]
)
def test_series_without_standard_pixel_data(tmp_series_dir, phantom_hu, permissive, private_blob, code):
    written = write_ct_series(tmp_series_dir, phantom_hu[:3])
    for path in written.paths:
        strip_pixels(path, private_blob=private_blob)
    (candidate,) = index_inputs([tmp_series_dir], settings=permissive).candidates
    assert candidate.error_code is code and not candidate.selected
    with pytest.raises(IngestError) as raised:
        load_scan(candidate, settings=permissive)
    assert raised.value.code is code


def test_files_without_pixels_inside_a_good_series_are_dropped(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    strip_pixels(written.paths[0], private_blob=False)
    result = index_inputs([tmp_series_dir], settings=settings)
    assert issues_by_name(result)[written.paths[0].name].code is ErrorCode.NO_PIXEL_DATA
    (candidate,) = result.candidates
    assert candidate.selected and candidate.n_files == 19 and candidate.size == (32, 32, 19)
    assert WarningCode.FILES_SKIPPED in [w.code for w in candidate.warnings]


def test_unsupported_transfer_syntax(tmp_series_dir, phantom_hu, permissive):
    written = write_ct_series(tmp_series_dir, phantom_hu[:2])
    for path in written.paths:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder
        ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
        ds.save_as(path)
    (candidate,) = index_inputs([tmp_series_dir], settings=permissive).candidates
    assert candidate.error_code is ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX
    assert "1.2.840.10008.1.2.4.100" in candidate.reason


def test_corrupt_compressed_stream_fails_cleanly_at_load(tmp_series_dir, phantom_hu, permissive):
    written = write_ct_series(tmp_series_dir, phantom_hu[:4], encoding=PixelEncoding(transfer_syntax=JPEG2000Lossless))
    ds = pydicom.dcmread(written.paths[2])
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x13" * 300])
    ds.save_as(written.paths[2])
    (candidate,) = index_inputs([tmp_series_dir], settings=permissive).candidates
    assert candidate.selected  # headers are fine
    with pytest.raises(IngestError) as raised:
        load_scan(candidate, settings=permissive)
    assert raised.value.code is ErrorCode.DECODE_FAILED
    assert written.paths[2].name in raised.value.message


def test_file_removed_after_indexing(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    (candidate,) = index_inputs([tmp_series_dir], settings=settings).candidates
    written.paths[5].unlink()
    with pytest.raises(IngestError) as raised:
        load_scan(candidate, settings=settings)
    assert raised.value.code is ErrorCode.UNREADABLE_FILE


def test_missing_input_path(tmp_path, settings):
    with pytest.raises(IngestError) as raised:
        index_inputs([tmp_path, tmp_path / "nope"], settings=settings)
    assert raised.value.code is ErrorCode.INPUT_NOT_FOUND and "nope" in raised.value.message


def test_single_files_and_folders_mixed_as_inputs(tmp_path, phantom_hu, settings):
    written = write_ct_series(tmp_path / "series", phantom_hu)
    loose = tmp_path / "loose"
    loose.mkdir()
    for path in written.paths[:10]:
        shutil.copy(path, loose / path.name)
    # The same images reached twice (folder + single files) count once.
    result = index_inputs([tmp_path / "series", *written.paths[:3], loose], settings=settings)
    (candidate,) = result.candidates
    assert candidate.n_files == 20 and candidate.selected


def test_header_reader_reports_enhanced_frames(tmp_path, phantom_hu):
    from pipeline.synthetic import write_enhanced_ct

    path = tmp_path / "e.dcm"
    write_enhanced_ct(path, phantom_hu[:5])
    header = read_dicom_header(path)
    assert header.functional_groups and header.number_of_frames == 5
    assert [frame.frame for frame in header.frames] == [0, 1, 2, 3, 4]
    assert header.frames[4].position == pytest.approx((-22.0, -22.0, -100.0 + 4 * 5.0))


@pytest.mark.parametrize("pixel_representation", [0, 1])
def test_unused_high_bits_are_ignored_like_pydicom(tmp_series_dir, phantom_hu, settings, pixel_representation):
    from pipeline.ingest.pixels import read_native_pixels, read_stored_pixels

    encoding = PixelEncoding(pixel_representation=pixel_representation, bits_stored=12, intercepts=-1024.0)
    hu = np.clip(phantom_hu, -1024, 1000)
    written = write_ct_series(tmp_series_dir, hu, encoding=encoding)
    ds = pydicom.dcmread(written.paths[4])
    dtype = np.int16 if pixel_representation else np.uint16
    stored = np.frombuffer(ds.PixelData, dtype=dtype).copy()
    stored.view(np.uint16)[:] |= 0xE000  # garbage above the 12 stored bits (bit 12 and up)
    if pixel_representation:
        stored.view(np.uint16)[:] &= 0xEFFF  # keep bit 12 clear: the garbage must not change the sign
    ds.PixelData = stored.tobytes()
    ds.save_as(written.paths[4])

    (candidate,) = index_inputs([tmp_series_dir], settings=settings).candidates
    source = next(s for s in candidate.plan.slices if s.path == str(written.paths[4]))
    plan = candidate.plan
    fast = read_native_pixels(source.path, source=source, rows=32, columns=32, layout=plan.pixel_format)
    slow = read_stored_pixels(source.path, rows=32, columns=32)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(load_scan(candidate, settings=settings).image), hu)


def test_file_rewritten_after_indexing(tmp_series_dir, phantom_hu, settings):
    written = write_ct_series(tmp_series_dir, phantom_hu)
    (candidate,) = index_inputs([tmp_series_dir], settings=settings).candidates
    ds = pydicom.dcmread(written.paths[2])
    ds.ImageComments = "edited after indexing: the pixel data moved"
    ds.save_as(written.paths[2])
    with pytest.raises(IngestError) as raised:
        load_scan(candidate, settings=settings)
    assert raised.value.code is ErrorCode.UNREADABLE_FILE and "changed since it was indexed" in raised.value.message


def test_unexpected_error_in_one_series_does_not_stop_the_index(tmp_path, phantom_hu, settings, monkeypatch):
    import pipeline.ingest.series as series_module
    from pipeline.synthetic import Series

    write_ct_series(tmp_path / "good", phantom_hu, series=Series(series_number=1))
    bad = write_ct_series(tmp_path / "bad", phantom_hu[:2], series=Series(series_number=2))
    original = series_module._series_candidates

    def explode_on_bad(series_key, members, *, settings):
        if series_key == bad.series_uid:
            raise RuntimeError("simulated bug")
        return original(series_key, members, settings=settings)

    monkeypatch.setattr(series_module, "_series_candidates", explode_on_bad)
    result = index_inputs([tmp_path], settings=settings)
    assert [c.series_number for c in result.candidates] == [1] and result.candidates[0].selected
    assert {issue.code for issue in result.skipped} == {ErrorCode.INTERNAL_ERROR} and len(result.skipped) == 2
