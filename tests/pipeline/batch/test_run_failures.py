"""Failure isolation and exit codes of ``lunglesion run``.

Decision on tilted series: by default a gantry tilt is corrected by resampling (warning
``GANTRY_TILT_CORRECTED``), so a tilted series is *bad* only when the configuration says so.
These tests run with ``geometry.on_gantry_tilt: reject``; the tilted series is then refused at
indexing with ``GANTRY_TILT``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ErrorCode
from pipeline.synthetic import Geometry, Patient, write_ct_series, write_localizer
from segmentation.weights import default_description_path
from tests.conftest import REPO_ROOT
from tests.pipeline.batch.conftest import ALL_OUTPUTS, TEST_SPEC, finished_run, read_csv, run_cli, write_scan

REJECT_TILT = "geometry:\n  on_gantry_tilt: reject\n"


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, session_anatomy):
    """One good chest CT beside a truncated file, a text file, a scout-only study, a tilted series
    and a CT without lungs (a water-filled body)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    when = datetime(2025, 4, 1, 9, 0)
    good = write_scan(
        root / "good",
        session_anatomy,
        patient=Patient(patient_id="LLBAD-GOOD"),
        when=when,
        lesion_pct=6.0,
        noise_seed=11,
    )
    tilted_geometry = Geometry(
        spacing=session_anatomy.geometry.spacing, origin=session_anatomy.geometry.origin, tilt_deg=15.0
    )
    tilted = write_scan(
        root / "tilted",
        session_anatomy,
        patient=Patient(patient_id="LLBAD-TILT"),
        when=when,
        lesion_pct=6.0,
        noise_seed=12,
        geometry=tilted_geometry,
    )
    scout = write_localizer(root / "scout", patient=Patient(patient_id="LLBAD-SCOUT"))
    nz, ny, nx = TEST_SPEC.shape
    yy, xx = np.mgrid[:ny, :nx]
    body = ((yy - ny / 2) / (0.36 * ny)) ** 2 + ((xx - nx / 2) / (0.45 * nx)) ** 2 < 1
    water = np.where(body, 20, -1000).astype(np.int16)[None].repeat(nz, axis=0)
    water = np.clip(water + np.random.default_rng(0).normal(0, 15, water.shape), -1024, 3071).astype(np.int16)
    no_lung = write_ct_series(
        root / "nolung", water, geometry=session_anatomy.geometry, patient=Patient(patient_id="LLBAD-NOLUNG")
    )
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image\n" * 20)
    truncated = junk / "cut.dcm"
    data = Path(good.files[0]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return {
        "root": root,
        "good": good,
        "tilted": tilted,
        "scout": scout,
        "no_lung": no_lung,
        "truncated": truncated,
        "text": junk / "notes.txt",
    }


def test_bad_inputs_fail_alone_with_their_codes_and_exit_3(tmp_path, bad_folder):
    config = tmp_path / "reject_tilt.yaml"
    config.write_text(REJECT_TILT)
    out = tmp_path / "out"
    run = finished_run(out, bad_folder["root"], "--config", config, "--outputs", ALL_OUTPUTS)
    assert run.returncode == 3, run.stderr[-3000:]
    assert "Traceback" not in run.stderr

    scans = {r["series_uid"]: r for r in read_csv(out / "scans.csv")}
    assert set(scans) == {bad_folder["good"].series_uid, bad_folder["no_lung"].series_uid}
    good = scans[bad_folder["good"].series_uid]
    assert good["status"] == "ok" and good["error_code"] == "" and float(good["lung_ml"]) > 1000
    failed = scans[bad_folder["no_lung"].series_uid]
    assert failed["status"] == "failed" and failed["error_code"] == ErrorCode.NO_LUNG_FOUND
    assert failed["error_message"] and failed["lung_ml"] == ""

    errors = read_csv(out / "errors.csv")
    found = {(r["level"], r["error_code"], r["series_uid"] or Path(r["path"]).name) for r in errors}
    assert found == {
        ("file", "TRUNCATED_FILE", "cut.dcm"),
        ("file", "NOT_DICOM", "notes.txt"),
        ("study", "NO_CT_SERIES", ""),  # the scout-only study ...
        ("study", "NO_CT_SERIES", ""),  # ... and the study of the tilted series (set: one entry)
        ("series", "LOCALIZER", bad_folder["scout"].series_uid),
        ("series", "GANTRY_TILT", bad_folder["tilted"].series_uid),
        ("scan", "NO_LUNG_FOUND", bad_folder["no_lung"].series_uid),
    }
    assert sum(r["level"] == "study" for r in errors) == 2
    assert all(r["message"] for r in errors)
    tilt = next(r for r in errors if r["error_code"] == "GANTRY_TILT")
    assert "15.0 degrees" in tilt["message"]

    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["scans_ok"] == 1 and counts["scans_failed"] == 1
    assert counts["other_errors"] == 3  # the truncated file and the two studies; a text file is not an error
    # The good scan has all its files; the failed one none but its state.
    assert len(list((out / "masks").rglob("*_dseg.nii.gz"))) == 1
    assert len(list((out / "seg").rglob("*_seg.dcm"))) == 1
    assert 'class="card failed"' in (out / "qc" / "index.html").read_text()


def test_tilted_series_is_corrected_by_default(tmp_path, bad_folder):
    """Without the reject setting the same tilted series is resampled and measured."""
    out = tmp_path / "out"
    run = finished_run(out, bad_folder["root"] / "tilted")
    assert run.returncode == 0, run.stderr[-3000:]
    (row,) = read_csv(out / "scans.csv")
    assert row["status"] == "ok" and float(row["lung_ml"]) > 1000
    (index_row,) = [r for r in read_csv(out / "index.csv") if r["selected"] == "true"]
    assert float(index_row["tilt_deg"]) == pytest.approx(15.0, abs=0.01)
    assert "GANTRY_TILT_CORRECTED" in index_row["warnings"]
    assert row["ingest_warnings"] == "GANTRY_TILT_CORRECTED"  # the repair is visible in the results table too


def test_a_dicomdir_in_the_export_is_not_a_failure(tmp_path, bad_folder):
    """PACS media exports carry a DICOMDIR index: it is listed in skipped_files.csv, the images
    are read directly, and the run ends with exit code 0."""
    from pydicom.fileset import FileSet

    fileset = FileSet()
    for path in bad_folder["good"].files:
        fileset.add(str(path))
    media = tmp_path / "media"
    fileset.write(media)
    assert (media / "DICOMDIR").is_file()
    out = tmp_path / "out"
    run = finished_run(out, media)
    assert run.returncode == 0, run.stderr[-3000:]
    (row,) = read_csv(out / "scans.csv")
    assert row["status"] == "ok" and row["series_uid"] == bad_folder["good"].series_uid
    skipped = read_csv(out / "skipped_files.csv")
    assert [(Path(r["path"]).name, r["error_code"]) for r in skipped] == [("DICOMDIR", "NON_IMAGE_OBJECT")]
    assert read_csv(out / "errors.csv")[0]["error_code"] == "NON_IMAGE_OBJECT"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_config_key", "segmentation"),
        ("invalid_config_value", "workers"),
        ("cohort_missing_column", "datetime"),
        ("cohort_bad_date", "line 2"),
        ("missing_input", "not found"),
        ("part_out_of_range", "--part-id"),
        ("missing_secret", "secret"),
        ("unknown_output", "--outputs"),
        ("part_id_missing", "needs --part-id"),
        ("unreadable_memory_limit", "--memory-limit"),
        ("corrupt_weights", "has SHA-256"),
    ],
)
def test_usage_errors_exit_2_before_anything_is_processed(tmp_path, bad_folder, case, message):
    good = bad_folder["root"] / "good"
    config, cohort = tmp_path / "config.yaml", tmp_path / "cohort.csv"
    args: list[object] = [good]
    if case == "unknown_config_key":
        config.write_text("segmentation:\n  no_such_key: 1\n")
        args += ["--config", config]
    elif case == "invalid_config_value":
        config.write_text("run:\n  workers: 0\n")
        args += ["--config", config]
    elif case == "cohort_missing_column":
        cohort.write_text("patient_id,event\nP1,infusion\n")
        args += ["--cohort", cohort]
    elif case == "cohort_bad_date":
        cohort.write_text("patient_id,event,datetime\nP1,infusion,2025-13-45\n")
        args += ["--cohort", cohort]
    elif case == "missing_input":
        args = [tmp_path / "no_such_folder"]
    elif case == "part_out_of_range":
        args += ["--num-parts", 2, "--part-id", 2]
    elif case == "missing_secret":
        args += ["--pseudonymize", tmp_path / "no_secret.txt"]
    elif case == "unknown_output":
        args += ["--outputs", "csv,pdf"]
    elif case == "part_id_missing":  # silently running part 0 of 2 would leave half the scans out
        args += ["--num-parts", 2]
    elif case == "unreadable_memory_limit":
        args += ["--memory-limit", "lots"]
    elif case == "corrupt_weights":  # checked once up front, not found by every worker
        shipped = default_description_path()
        models = tmp_path / "models"
        models.mkdir()
        shutil.copy(shipped, models / shipped.name)
        data = shipped.with_suffix(".pt").read_bytes()
        (models / shipped.with_suffix(".pt").name).write_bytes(data[: len(data) // 2])
        config.write_text(f"segmentation:\n  weights: models/{shipped.name}\n")
        args += ["--config", config]
    out = tmp_path / "out"
    result = run_cli("run", *args, "--out", out)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert "lunglesion: error [" in result.stderr  # the machine-readable code comes with the sentence
    assert not (out / "scans.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable CUDA GPU (this one has one)")
def test_cuda_without_a_gpu_is_refused_before_any_scan(tmp_path, bad_folder):
    """Not one SEGMENTATION_FAILED per scan: the run is refused up front, saying why."""
    result = run_cli("run", bad_folder["root"] / "good", "--out", tmp_path / "out", "--device", "cuda")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "[CONFIG_INVALID]" in result.stderr and "torch.cuda.is_available() is False" in result.stderr
    assert not (tmp_path / "out" / "scans.csv").exists()


# --- worker crashes ---------------------------------------------------------------------------


def test_a_dead_worker_fails_only_its_own_task():
    """Items are stdlib calls (importable by every worker); one of them kills its worker process."""
    from functools import partial
    from operator import call

    from pipeline.batch.executor import ExecutionOptions, TaskCrash, run_tasks

    items = [partial(abs, -1), partial(abs, -2), partial(os._exit, 17), partial(abs, -4), partial(abs, -5)]
    results: dict[int, object] = {}
    run_tasks(
        call,
        items,
        key=lambda item: f"item-{items.index(item)}",
        options=ExecutionOptions(workers=2),
        on_result=lambda item, result: results.__setitem__(items.index(item), result),
    )
    assert {k: v for k, v in results.items() if k != 2} == {0: 1, 1: 2, 3: 4, 4: 5}
    crash = results[2]
    assert isinstance(crash, TaskCrash) and crash.code is ErrorCode.WORKER_CRASHED
    assert "died" in crash.message


def test_a_scan_whose_worker_dies_is_recorded_as_failed_and_the_others_finish(tmp_path, monkeypatch, reference_input):
    from pipeline.batch import runner
    from pipeline.batch.runner import RunOptions, run_batch
    from pipeline.batch.task import process_scan
    from pipeline.config import load_settings
    from pipeline.exit_codes import ExitCode
    from tests.pipeline.batch.crash_helpers import CRASH_SERIES_ENV, process_or_die

    victim = reference_input.scans[1]
    # Inherited by the spawned worker processes: which series to die on, and (sys.path) where
    # ``tests.pipeline.batch.crash_helpers`` can be imported from.
    monkeypatch.setenv(CRASH_SERIES_ENV, victim.series_uid)
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    monkeypatch.setattr(runner, "process_scan", process_or_die)
    out = tmp_path / "out"
    options = RunOptions(inputs=(reference_input.dicom,), out_dir=out, cohort=reference_input.cohort, workers=1)
    summary = run_batch(options, settings=load_settings())
    assert summary.exit_code is ExitCode.SOME_FAILED
    assert (summary.scans_ok, summary.scans_failed) == (2, 1)
    rows = {r["series_uid"]: r for r in read_csv(out / "scans.csv")}
    assert rows[victim.series_uid]["status"] == "failed"
    assert rows[victim.series_uid]["error_code"] == ErrorCode.WORKER_CRASHED
    # The crashed scan's row still names the model it ran with (provenance of every row).
    ok_row = next(r for r in rows.values() if r["status"] == "ok")
    assert rows[victim.series_uid]["model_sha256"] == ok_row["model_sha256"]
    assert all(r["status"] == "ok" for uid, r in rows.items() if uid != victim.series_uid)
    (error,) = read_csv(out / "errors.csv")
    assert (error["level"], error["error_code"], error["series_uid"]) == ("scan", "WORKER_CRASHED", victim.series_uid)
    # A rerun retries the crashed scan (failures are never reused) and reuses the finished ones.
    monkeypatch.setattr(runner, "process_scan", process_scan)
    summary = run_batch(options, settings=load_settings())
    assert summary.exit_code is ExitCode.OK
    assert (summary.scans_ok, summary.scans_failed, summary.scans_reused) == (3, 0, 2)
