"""``lunglesion index`` through the installed console script, and the index CSV files."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from pipeline.cli.index_cmd import skipped_csv_path
from pipeline.ingest import index_inputs
from pipeline.ingest.report import INDEX_COLUMNS, write_index_csv
from pipeline.synthetic import Patient, Series, Study, write_ct_series, write_localizer

LUNGLESION = Path(sys.executable).parent / "lunglesion"
REQUIRED_COLUMNS = [
    "patient_id",
    "study_uid",
    "series_uid",
    "modality",
    "series_description",
    "n_files",
    "size_x",
    "size_y",
    "size_z",
    "spacing_x",
    "spacing_y",
    "spacing_z",
    "selected",
    "reason",
    "error_code",
]
PATIENT = Patient(patient_id="PHI-7781")


def run_cli(*args: object) -> subprocess.CompletedProcess:
    assert LUNGLESION.exists(), f"console script not installed at {LUNGLESION}"
    return subprocess.run([str(LUNGLESION), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory, phantom_hu):
    root = tmp_path_factory.mktemp("cli")
    write_ct_series(root / "ct", phantom_hu, patient=PATIENT, series=Series(2, "CHEST 1.0 B30f", "B30f"))
    write_localizer(root / "scout", patient=PATIENT)
    (root / "readme.txt").write_text("not an image")
    return root


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_csv_has_the_required_columns_first(study_folder, settings, tmp_path):
    result = index_inputs([study_folder], settings=settings)
    out = tmp_path / "deep" / "index.csv"
    write_index_csv(result, out)
    columns, rows = read_csv(out)
    assert columns[:15] == REQUIRED_COLUMNS
    assert tuple(columns) == INDEX_COLUMNS
    selected = [row for row in rows if row["selected"] == "true"]
    (row,) = selected
    assert row["patient_id"] == "PHI-7781" and row["modality"] == "CT"
    assert (row["size_x"], row["size_y"], row["size_z"]) == ("32", "32", "20")
    assert (row["spacing_x"], row["spacing_y"], row["spacing_z"]) == ("0.7", "0.7", "5")
    assert row["n_files"] == "20" and row["error_code"] == "" and row["reason"].startswith("selected:")
    (scout,) = [row for row in rows if row["selected"] == "false"]
    assert scout["error_code"] == "LOCALIZER"
    assert [p.name for p in out.parent.iterdir()] == ["index.csv"]  # no temporary files left behind


def test_dates_without_time_stay_dates(phantom_hu, settings, tmp_path):
    """De-identified headers keep StudyDate but drop the times: no invented 00:00:00 anywhere."""
    root = tmp_path / "in"
    undated_clock = Study(study_date=date(2025, 3, 3), study_time=None, study_id="2")
    write_ct_series(root / "a", phantom_hu, patient=PATIENT, study=undated_clock, series=Series(acquisition_time=None))
    write_ct_series(root / "b", phantom_hu, patient=PATIENT, study=Study(study_date=date(2025, 3, 3)))  # timed
    result = index_inputs([root], settings=settings)  # sorts a date and a date-time of one patient
    (date_only,) = [c for c in result.candidates if not isinstance(c.study_datetime, datetime)]
    assert (date_only.study_datetime, date_only.acquisition_datetime) == (date(2025, 3, 3), date(2025, 3, 3))
    out = tmp_path / "index.csv"
    write_index_csv(result, out)
    rows = {row["scan_id"]: row for row in read_csv(out)[1]}
    row = rows.pop(date_only.scan_id)
    assert (row["study_date"], row["study_time"], row["acquisition_datetime"]) == ("2025-03-03", "", "2025-03-03")
    (timed,) = rows.values()
    assert (timed["study_date"], timed["study_time"], timed["acquisition_datetime"]) == (
        "2025-03-03",
        "10:30:00",
        "2025-03-03T10:35:00",
    )


def test_cli_index_prints_table_and_writes_csv(study_folder, tmp_path):
    out = tmp_path / "index.csv"
    completed = run_cli("index", study_folder, "--csv", out)
    assert completed.returncode == 0, completed.stderr
    result_rows = read_csv(out)[1]
    scan_ids = {row["scan_id"] for row in result_rows}
    for scan_id in scan_ids:
        assert scan_id in completed.stdout
    assert "LOCALIZER" in completed.stdout and "Skipped 1 files (NOT_DICOM x1)" in completed.stdout
    # Patient identifiers stay out of the terminal and the log (the CSV carries them).
    assert "PHI-7781" not in completed.stdout and "PHI-7781" not in completed.stderr
    skipped = read_csv(tmp_path / "index.skipped.csv")[1]
    assert [(Path(r["path"]).name, r["error_code"]) for r in skipped] == [("readme.txt", "NOT_DICOM")]


def test_cli_exit_code_zero_when_nothing_is_selected(tmp_path):
    write_localizer(tmp_path / "scout")
    completed = run_cli("index", tmp_path)
    assert completed.returncode == 0
    assert "NO_CT_SERIES" in completed.stdout


def test_cli_missing_input_is_a_usage_error(tmp_path):
    completed = run_cli("index", tmp_path / "missing")
    assert completed.returncode == 2
    assert "input path not found" in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("selection:\n  kernel_preference: medium\n", "selection.kernel_preference"),
        ("geometry:\n  on_gantry_tilt: maybe\n", "geometry.on_gantry_tilt"),
        ("index:\n  wokers: 3\n", "index.wokers"),
        ("hu:\n  padding_hu: -40000\n", "hu.padding_hu"),
    ],
)
def test_cli_bad_config_is_a_usage_error(study_folder, tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    completed = run_cli("index", study_folder, "--config", config)
    assert completed.returncode == 2
    assert expected in completed.stderr and "Traceback" not in completed.stderr


def test_cli_config_overlay_changes_the_verdict(study_folder, tmp_path):
    config = tmp_path / "loose.yaml"
    config.write_text("selection:\n  localizer_image_type_values: []\n  localizer_description_patterns: []\n")
    out = tmp_path / "i.csv"
    assert run_cli("index", study_folder, "--config", config, "--csv", out).returncode == 0
    codes = sorted(row["error_code"] for row in read_csv(out)[1])
    assert "LOCALIZER" not in codes


def test_skipped_csv_default_name():
    assert skipped_csv_path(Path("/x/index.csv")) == Path("/x/index.skipped.csv")
    assert skipped_csv_path(Path("/x/table")) == Path("/x/table.skipped.csv")
