"""``lunglesion run`` end to end: every output present and consistent with every other."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from pipeline import __version__
from tests.pipeline.batch.conftest import (
    ALL_OUTPUTS,
    COHORT_ID_A,
    DICOM_ID_EVIL,
    csv_tables,
    finished_run,
    per_scan_files,
    read_csv,
)


def _stem(row: dict[str, str]) -> str:
    """BIDS-style stem of a scan's files, spelled out from the issue's naming rule."""
    subject = "".join(ch for ch in row["patient_file_stem"] if ch.isalnum())
    session = row["acquisition_datetime"][:10].replace("-", "")
    return f"sub-{subject}_ses-{session}_acq-{row['scan_id']}"


def _session_folder(out: Path, kind: str, row: dict[str, str]) -> Path:
    sub, ses = _stem(row).split("_")[:2]
    return out / kind / sub / ses


def _model_sha256() -> str:
    from segmentation.weights import read_description

    return read_description(None).sha256


def _nifti_labels(out: Path, row: dict[str, str]) -> sitk.Image:
    path = _session_folder(out, "masks", row) / f"{_stem(row)}_desc-lunglesion_dseg.nii.gz"
    assert path.is_file(), path
    return sitk.ReadImage(str(path))


def test_run_writes_every_output_and_they_agree(reference_run, reference_input):
    out = reference_run.out
    assert reference_run.returncode == 0, reference_run.stderr[-3000:]
    scans = read_csv(out / "scans.csv")
    assert sorted(r["series_uid"] for r in scans) == sorted(s.series_uid for s in reference_input.scans)
    assert {r["status"] for r in scans} == {"ok"}
    assert {r["patient_id"] for r in scans} == {COHORT_ID_A, DICOM_ID_EVIL}
    assert {r["model_sha256"] for r in scans} == {_model_sha256()}
    assert {r["pipeline_version"] for r in scans} == {__version__}

    run = json.loads((out / "run.json").read_text())
    assert run["exit_code"] == 0
    assert run["counts"]["scans_selected"] == run["counts"]["scans_computed"] == run["counts"]["scans_ok"] == 3
    assert run["counts"]["scans_failed"] == run["counts"]["scans_reused"] == 0
    assert run["model"]["sha256"] == _model_sha256()
    assert run["outputs"] == ALL_OUTPUTS.split(",")
    # The resolved configuration shows what ran: command-line options override the config file's.
    assert run["config"]["outputs"]["formats"] == ALL_OUTPUTS.split(",")
    assert run["model_loads_per_worker"] == [1]  # one worker, the model loaded once for three scans

    # Per-patient tables hold exactly that patient's rows of scans.csv, in time order.
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in scans:
        by_patient[row["patient_file_stem"]].append(row)
    assert sorted(p.name for p in (out / "patients").glob("*.csv") if not p.name.endswith("_events.csv")) == sorted(
        f"{stem}.csv" for stem in by_patient
    )
    for stem, rows in by_patient.items():
        assert read_csv(out / "patients" / f"{stem}.csv") == sorted(rows, key=lambda r: r["scan_datetime"])
        assert (out / "patients" / f"{stem}_trajectory.png").is_file()

    # The cohort summary counts and quotes the same scans.
    summary = read_csv(out / "cohort_summary.csv")
    patients = {r["patient_id"]: r for r in summary if r["row_type"] == "patient"}
    assert set(patients) == {COHORT_ID_A, DICOM_ID_EVIL}
    for patient_id, row in patients.items():
        mine = [r for r in scans if r["patient_id"] == patient_id]
        assert int(row["n_scans"]) == len(mine)
        assert int(row["n_scans_failed"]) == 0
    a_rows = sorted((r for r in scans if r["patient_id"] == COHORT_ID_A), key=lambda r: r["scan_datetime"])
    assert [r["phase"] for r in a_rows] == ["baseline", "follow_up"]
    assert patients[COHORT_ID_A]["baseline_series_uid"] == a_rows[0]["series_uid"]
    assert patients[COHORT_ID_A]["baseline_lesion_pct"] == a_rows[0]["lesion_pct"]
    assert patients[COHORT_ID_A]["last_follow_up_lesion_pct"] == a_rows[1]["lesion_pct"]
    assert patients[COHORT_ID_A]["last_follow_up_delta_lesion_pct"] == a_rows[1]["delta_lesion_pct"]
    cohort_row = [r for r in summary if r["row_type"] == "cohort"]
    assert len(cohort_row) == 1 and cohort_row[0]["cohort_n_patients"] == "2"

    qc_page = (out / "qc" / "index.html").read_text()
    for row in scans:
        stem = _stem(row)
        # NIfTI label map on the CT grid whose voxel counts are the volumes of scans.csv.
        labels = _nifti_labels(out, row)
        assert labels.GetSize() == (int(row["size_x"]), int(row["size_y"]), int(row["size_z"]))
        voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
        assert abs(voxel_ml - float(row["voxel_ml"])) < 1e-6
        values = sitk.GetArrayViewFromImage(labels)
        for column, selected in (
            ("lung_ml", values > 0),
            ("lung_right_ml", (values > 0) & (values % 2 == 1)),
            ("lung_left_ml", (values > 0) & (values % 2 == 0)),
            ("ggo_ml", (values == 3) | (values == 4)),
            ("consolidation_ml", (values == 5) | (values == 6)),
        ):
            assert abs(np.count_nonzero(selected) * voxel_ml - float(row[column])) < 0.0006, column
        assert (_session_folder(out, "masks", row) / "dseg.tsv").is_file()
        assert (_session_folder(out, "seg", row) / f"{stem}_seg.dcm").is_file()
        for picture in (out / "qc" / f"{stem}.png", out / "qc" / f"{stem}_thumb.png"):
            assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{stem}_thumb.png"' in qc_page and f'href="{stem}.png"' in qc_page
        assert f"<td>{row['lesion_pct']}</td>" in qc_page

    index = read_csv(out / "index.csv")
    assert sorted(r["series_uid"] for r in index if r["selected"] == "true") == sorted(r["series_uid"] for r in scans)
    assert read_csv(out / "errors.csv") == [] and read_csv(out / "skipped_files.csv") == []


def test_dicom_seg_reads_back_equal_to_the_nifti_labels_frame_by_frame(reference_run, reference_input):
    import highdicom as hd

    out = reference_run.out
    for row in read_csv(out / "scans.csv"):
        source = next(s for s in reference_input.scans if s.series_uid == row["series_uid"])
        headers = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in source.files]
        slice_of_uid = {}
        labels = sitk.GetArrayFromImage(_nifti_labels(out, row))
        image = _nifti_labels(out, row)
        for ds in headers:
            position = np.asarray(ds.ImagePositionPatient, dtype=float)
            index = image.TransformPhysicalPointToContinuousIndex(tuple(position))
            assert np.allclose(index[:2], 0.0, atol=1e-3)  # the CT slices start at the label grid's corner
            slice_of_uid[str(ds.SOPInstanceUID)] = (int(round(index[2])), position)
        expected = {
            1: (labels > 0) & (labels % 2 == 1),  # right lung, lesions included
            2: (labels > 0) & (labels % 2 == 0),
            3: (labels == 3) | (labels == 4),  # ground-glass opacity
            4: (labels == 5) | (labels == 6),  # consolidation
        }

        path = _session_folder(out, "seg", row) / f"{_stem(row)}_seg.dcm"
        seg = hd.seg.segread(str(path))
        assert seg.SegmentationType == "BINARY"
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == row["series_uid"]
        assert seg.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
        codes = {d.SegmentNumber: d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in seg.SegmentSequence}
        assert codes == {1: "3341006", 2: "44029006", 3: "1217294009", 4: "95436008"}
        pixel_spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert [float(v) for v in pixel_spacing] == [float(v) for v in headers[0].PixelSpacing]

        frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
        seen = set()
        for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, frames, strict=True):
            number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            uid = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            k, position = slice_of_uid[uid]
            frame_position = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
            assert np.allclose(frame_position, position, atol=1e-4)
            assert np.array_equal(frame.astype(bool), expected[number][k]), (row["scan_id"], number, k)
            seen.add((number, k))
        # Frames are omitted only where the segment is empty on that slice.
        for number, mask in expected.items():
            for k in np.flatnonzero(mask.any(axis=(1, 2))):
                assert (number, int(k)) in seen, (row["scan_id"], number, k)
        # highdicom's own reading as a volume agrees too, placed by its affine on the CT grid.
        volume = seg.get_volume(combine_segments=False)
        assert volume.array.shape[1:] == (labels.shape[1], labels.shape[2], 4)
        covered = set()
        for i in range(volume.array.shape[0]):
            corner = volume.affine @ np.array([i, 0.0, 0.0, 1.0])
            index = image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in corner[:3]))
            assert np.allclose(index[:2], 0.0, atol=1e-3)
            k = int(round(index[2]))
            covered.add(k)
            for number, mask in expected.items():
                assert np.array_equal(volume.array[i, :, :, number - 1].astype(bool), mask[k]), (number, k)
        outside = [k for k in range(labels.shape[0]) if k not in covered]
        assert not any(mask[outside].any() for mask in expected.values())


def test_patient_id_with_path_traversal_stays_inside_the_output_folder(reference_run, reference_input):
    out = reference_run.out.resolve()
    root = out.parent
    everything = [p.resolve() for p in root.rglob("*")]
    assert everything and all(p == out or out in p.parents for p in everything)
    evil = [r for r in read_csv(out / "scans.csv") if r["patient_id"] == DICOM_ID_EVIL]
    assert len(evil) == 1
    stem = evil[0]["patient_file_stem"]
    assert "/" not in stem and ".." not in stem and stem.startswith("etc_x-")
    assert (out / "patients" / f"{stem}.csv").is_file()
    assert list((out / "masks").glob(f"sub-etcx*/ses-20250302/{_stem(evil[0])}_desc-lunglesion_dseg.nii.gz"))
    # Nothing was created where the raw ID would lead.
    for kind in ("masks", "seg", "qc", "patients"):
        assert not (out / kind / ".." / ".." / "etc").exists()


def test_rerun_skips_finished_scans_and_touches_no_result_file(reference_run, reference_input):
    out = reference_run.out
    before = per_scan_files(out)
    tables = csv_tables(out)
    again = finished_run(
        out, reference_input.dicom, "--cohort", reference_input.cohort, "--outputs", ALL_OUTPUTS, "--workers", 1
    )
    assert again.returncode == 0, again.stderr[-3000:]
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["scans_reused"] == 3 and counts["scans_computed"] == 0 and counts["scans_ok"] == 3
    assert per_scan_files(out) == before  # same bytes and same modification times
    assert csv_tables(out) == tables


def test_a_finished_scan_whose_output_file_was_deleted_is_computed_again(tmp_path, reference_run, reference_input):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference_run.out, out)
    (mask,) = sorted(out.glob("masks/*/*/*_dseg.nii.gz"))[:1]
    before = mask.read_bytes()
    mask.unlink()
    again = finished_run(
        out, reference_input.dicom, "--cohort", reference_input.cohort, "--outputs", ALL_OUTPUTS, "--workers", 1
    )
    assert again.returncode == 0, again.stderr[-3000:]
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["scans_computed"] == 1 and counts["scans_reused"] == 2
    assert mask.read_bytes() == before  # the same mask again (determinism)
    assert csv_tables(out) == csv_tables(reference_run.out)


def test_two_runs_of_the_same_input_give_identical_tables_and_force_recomputes(
    tmp_path, reference_run, reference_input
):
    out = tmp_path / "second"
    args = (reference_input.dicom, "--cohort", reference_input.cohort, "--outputs", ALL_OUTPUTS, "--workers", 1)
    second = finished_run(out, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert csv_tables(out) == csv_tables(reference_run.out)

    before = per_scan_files(out)
    forced = finished_run(out, *args, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["scans_computed"] == 3 and counts["scans_reused"] == 0
    after = per_scan_files(out)
    assert after.keys() == before.keys()
    done = [name for name in after if name.endswith("done.json")]
    assert len(done) == 3 and all(after[name][1] > before[name][1] for name in done)  # rewritten
    assert csv_tables(out) == csv_tables(reference_run.out)
