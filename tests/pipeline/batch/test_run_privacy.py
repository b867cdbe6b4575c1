"""Patient identifiers in the outputs and logs of ``lunglesion run``."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

from pipeline.privacy import Pseudonymizer
from tests.pipeline.batch.conftest import (
    ALL_OUTPUTS,
    COHORT_ID_A,
    DICOM_ID_A,
    DICOM_ID_EVIL,
    NAME_A,
    NAME_EVIL,
    finished_run,
    read_csv,
    run_cli,
)

#: Every spelling of an original identifier that must not survive pseudonymisation: the IDs,
#: the names' parts, and what a file-name sanitiser would make of the ``../../etc/x`` ID.
FORBIDDEN = (
    DICOM_ID_A,
    COHORT_ID_A,
    DICOM_ID_EVIL,
    "etc/x",
    "etc_x",
    "etcx",
    *NAME_A.split("^"),
    *NAME_EVIL.split("^"),
)


def _leaks(data: bytes) -> list[str]:
    return [word for word in FORBIDDEN if word.encode() in data]


def test_pseudonymized_outputs_hold_no_original_identifier_anywhere(tmp_path, reference_input):
    secret = tmp_path / "secret.key"
    secret.write_text("correct horse battery staple, but longer\n")
    out = tmp_path / "out"
    run = finished_run(
        out,
        reference_input.dicom,
        "--cohort",
        reference_input.cohort,
        "--pseudonymize",
        secret,
        "--outputs",
        ALL_OUTPUTS,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        relative = path.relative_to(out).as_posix()
        assert not _leaks(relative.encode()), relative
        data = path.read_bytes()
        assert not _leaks(data), (relative, _leaks(data))
        if path.suffix == ".gz":
            assert not _leaks(gzip.decompress(data)), relative
    assert not _leaks(run.stderr.encode()) and not _leaks(run.stdout.encode())

    scans = read_csv(out / "scans.csv")
    pseudonyms = {r["patient_id"] for r in scans}
    assert len(pseudonyms) == 2 and all(p.startswith("sub") and len(p) == 15 for p in pseudonyms)
    # The cohort's infusions still apply to the pseudonymised patient: timepoints are linked.
    assert sorted(r["phase"] for r in scans if r["phase"]) == ["baseline", "follow_up"]
    # The pseudonyms are the keyed hashes of the patient the cohort resolves each scan to, so the
    # same secret gives the same pseudonyms in every run (runs can be resumed and merged).
    keyed = Pseudonymizer.from_file(secret)
    assert pseudonyms == {keyed(COHORT_ID_A), keyed(DICOM_ID_EVIL)}

    # Rebuilding the tables with the (raw) cohort file needs the same secret, and then links the
    # same way and writes no raw ID either.
    refused = run_cli("report", out, "--cohort", reference_input.cohort)
    assert refused.returncode == 2 and "--pseudonymize" in refused.stderr
    rebuilt = run_cli("report", out, "--cohort", reference_input.cohort, "--pseudonymize", secret)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert sorted(r["phase"] for r in read_csv(out / "scans.csv") if r["phase"]) == ["baseline", "follow_up"]
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert not _leaks(path.relative_to(out).as_posix().encode()) and not _leaks(path.read_bytes()), path


def test_an_identifier_typed_into_the_series_description_is_pseudonymized_too(tmp_path, session_anatomy):
    from pipeline.batch.runner import BatchRun, RunOptions
    from pipeline.config import load_settings
    from pipeline.ingest import index_inputs
    from pipeline.synthetic import Patient, Series, write_ct_series

    phantom = session_anatomy.render(lesion_pct=5.0, consolidation_fraction=0.25, noise_seed=7)
    root = tmp_path / "export"
    write_ct_series(
        root,
        phantom.hu,
        geometry=phantom.geometry,
        patient=Patient(patient_id=DICOM_ID_A, name=NAME_A),
        series=Series(series_number=2, description=f"CHEST {DICOM_ID_A} B30f", slice_thickness=5.0),
    )
    secret = tmp_path / "secret.key"
    secret.write_text("yet another long enough secret for the test\n")
    out = tmp_path / "out"
    run = finished_run(out, root, "--pseudonymize", secret)
    assert run.returncode == 0, run.stderr[-3000:]
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert not _leaks(path.read_bytes()), (path.relative_to(out), _leaks(path.read_bytes()))
    (row,) = read_csv(out / "scans.csv")
    assert row["series_description"] == f"CHEST {Pseudonymizer.from_file(secret)(DICOM_ID_A)} B30f"
    # The QC caption (drawn as pixels, so not found by a byte search) is built from the same text.
    options = RunOptions(inputs=(root,), out_dir=tmp_path / "plan", pseudonymize_secret=secret)
    batch = BatchRun(options, settings=load_settings())
    batch.index = index_inputs([root], settings=batch.settings)
    (task,), _ = batch._plan(list(batch.index.selected), model_sha="")
    assert DICOM_ID_A not in task.caption_title and "CHEST sub" in task.caption_title


def test_logs_carry_no_identifier_by_default(reference_run):
    """Without --log-phi the run's log names scans by scan id only (the outputs do carry IDs)."""
    assert reference_run.returncode == 0
    assert not _leaks(reference_run.stderr.encode()), _leaks(reference_run.stderr.encode())
    assert DICOM_ID_EVIL in Path(reference_run.out / "scans.csv").read_text()


def test_failure_messages_are_pseudonymized_and_kept_out_of_the_log(tmp_path, session_anatomy):
    """A scan that fails at load time says which file broke; the file's path holds the PatientID
    (archives are often exported as PATIENTID/STUDY/SERIES). With --pseudonymize the message in
    every table carries the pseudonym, and the log (no --log-phi) carries only the error code's
    sentence, also for the worker process that saw the failure."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    from pipeline.synthetic import Patient
    from tests.pipeline.batch.conftest import write_scan

    root = tmp_path / "export"
    broken = write_scan(
        root / DICOM_ID_A / "CT",
        session_anatomy,
        patient=Patient(patient_id=DICOM_ID_A, name=NAME_A),
        when=datetime(2025, 3, 2, 11, 0),
        lesion_pct=5.0,
        noise_seed=4,
    )
    victim = broken.files[len(broken.files) // 2]
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x13" * 300])  # headers fine, stream corrupt
    ds.save_as(victim)
    secret = tmp_path / "secret.key"
    secret.write_text("another long enough secret for the test\n")

    plain = finished_run(tmp_path / "plain", root)
    assert plain.returncode == 3
    (row,) = read_csv(tmp_path / "plain" / "scans.csv")
    assert row["error_code"] == "DECODE_FAILED" and DICOM_ID_A in row["error_message"]  # the path is useful
    assert len(row["model_sha256"]) == 64  # the model the scan was meant for, also on failures
    assert not _leaks(plain.stderr.encode()), plain.stderr[-2000:]
    assert "DECODE_FAILED" in plain.stderr

    out = tmp_path / "pseudo"
    run = finished_run(out, root, "--pseudonymize", secret)
    assert run.returncode == 3
    (row,) = read_csv(out / "scans.csv")
    assert row["error_code"] == "DECODE_FAILED" and Pseudonymizer.from_file(secret)(DICOM_ID_A) in row["error_message"]
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert not _leaks(path.read_bytes()), (path.relative_to(out), _leaks(path.read_bytes()))
    assert not _leaks(run.stderr.encode())
