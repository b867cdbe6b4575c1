"""``lunglesion demo``: the generated cohort, its truth, the comparison table and the command."""

from __future__ import annotations

import csv
from datetime import datetime

import pytest

from metrics.settings import ResponseSettings
from pipeline.demo.design import DEFAULT_DESIGN, DemoDesign, DemoPatient, DemoScan
from pipeline.demo.generate import TruthRow, write_demo_inputs
from pipeline.demo.summary import agreement, compare, format_table, true_responses
from pipeline.errors import ConfigError

#: Two patients, two scans each, on a coarse grid: the whole pipeline in well under a minute.
TINY = DemoDesign(
    patients=(
        DemoPatient(
            "T01",
            "TINY-0001",
            scale=0.92,
            seed=7,
            course="improving",
            scans=(DemoScan(-23 / 24, 20.0, 0.3), DemoScan(76 / 24, 6.0, 0.1)),
        ),
        DemoPatient(
            "T02",
            "TINY-0002",
            scale=0.95,
            seed=8,
            course="worsening",
            scans=(DemoScan(-23 / 24, 4.0, 0.1), DemoScan(76 / 24, 16.0, 0.3)),
        ),
    ),
    first_infusion=datetime(2025, 3, 3, 10, 0),
    infusion_days=(0.0, 2.0),
    shape=(56, 160, 160),
    spacing=(2.2, 2.2, 5.0),
)
RULES = ResponseSettings(absolute_threshold_pp=3.0, relative_threshold_pct=25.0)


def test_the_default_design_is_three_patients_around_three_infusions_two_days_apart():
    assert DEFAULT_DESIGN.infusion_days == (0.0, 2.0, 4.0)
    assert len(DEFAULT_DESIGN.patients) == 3
    assert {p.course for p in DEFAULT_DESIGN.patients} == {"improving", "stable", "worsening"}
    assert all(len(p.scans) == 4 and p.scans[0].day < 0 < p.scans[1].day for p in DEFAULT_DESIGN.patients)


def test_inputs_are_dicom_a_cohort_file_and_the_exact_truth(tmp_path):
    from pipeline.cohort import read_cohort
    from pipeline.config import load_settings
    from pipeline.ingest import index_inputs

    folder = tmp_path / "input"
    inputs = write_demo_inputs(folder, design=TINY)
    assert not inputs.reused and len(inputs.truth) == 4
    for row, scan in zip(inputs.truth, [s for p in TINY.patients for s in p.scans], strict=True):
        assert row.lesion_pct == pytest.approx(scan.lesion_pct, abs=0.01)
        assert 2000 < row.lung_ml < 6000
    cohort = read_cohort(inputs.cohort_csv)
    assert sorted(cohort.patient_ids) == ["T01", "T02"]
    assert len(cohort.infusions_of("T01")) == 2 and cohort.dicom_ids == {"TINY-0001": "T01", "TINY-0002": "T02"}
    index = index_inputs([inputs.dicom_dir], settings=load_settings())
    assert sorted(c.series_uid for c in index.selected) == sorted(r.series_uid for r in inputs.truth)
    assert {c.error_code for c in index.candidates if not c.selected} == {"LOCALIZER"}  # one scout per visit

    # Unchanged design: kept as it is (same files, same modification times).
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    again = write_demo_inputs(folder, design=TINY)
    assert again.reused and again.truth == inputs.truth
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamps


def test_a_folder_the_demo_did_not_write_is_never_overwritten(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "precious.txt").write_text("a user's file")
    with pytest.raises(ConfigError, match="does not hold a lunglesion demo input"):
        write_demo_inputs(folder, design=TINY)
    assert (folder / "precious.txt").read_text() == "a user's file"


def _truth(patient: str, day: float, pct: float, uid: str) -> TruthRow:
    return TruthRow(patient, "D", "course", "", day, "1.2", uid, 4000.0, 0.0, 0.0, 0.0, pct, pct, 0.0)


def test_true_responses_follow_the_pipelines_rules():
    truth = [
        _truth("A", -1, 20.0, "1.1"),
        _truth("A", 1, 16.0, "1.2"),
        _truth("A", 3, 14.0, "1.3"),
        _truth("B", -1, 8.0, "1.4"),
        _truth("B", 3, 11.0, "1.5"),
        _truth("B", 5, 10.9, "1.6"),
    ]
    # A: -4 pp / -20 % (stable: relative change below 25 %), -6 pp / -30 % (improved).
    # B: +3 pp / +37.5 % (worsened, the threshold is inclusive), +2.9 pp (stable).
    assert true_responses(truth, settings=RULES) == {
        "1.2": "stable",
        "1.3": "improved",
        "1.5": "worsened",
        "1.6": "stable",
    }


def test_comparison_joins_measurements_by_series_and_shows_failures(tmp_path):
    truth = [_truth("A", -1, 20.0, "1.1"), _truth("A", 3, 10.0, "1.2")]
    scans = tmp_path / "scans.csv"
    with open(scans, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["series_uid", "status", "error_code", "lesion_pct", "lung_ml", "phase", "response"])
        writer.writerow(["1.2", "ok", "", "11.5000", "3900.000", "follow_up", "improved"])
        writer.writerow(["1.1", "failed", "NO_LUNG_FOUND", "", "", "pre", ""])
    rows = compare(truth, scans, settings=RULES)
    summary = agreement(rows)
    assert (summary.n_measured, summary.n_responses, summary.n_responses_agree) == (1, 1, 1)
    assert summary.mean_abs_difference_pp == pytest.approx(1.5) == summary.max_abs_difference_pp
    assert [(r.status, r.measured_lesion_pct, r.true_response, r.measured_response) for r in rows] == [
        ("failed", None, "", ""),
        ("ok", 11.5, "improved", "improved"),
    ]
    assert rows[1].difference_pp == pytest.approx(1.5)
    table = format_table(rows).splitlines()
    assert table[0].split() == [
        "patient",
        "course",
        "day",
        "phase",
        "lung",
        "mL",
        "true",
        "measured",
        "lesion",
        "%",
        "true",
        "measured",
        "diff",
        "(pp)",
        "response",
        "true",
        "measured",
    ]
    assert "failed NO_LUNG_FOUND" in table[2]
    assert table[3].split() == [
        "A",
        "course",
        "+3.0",
        "follow_up",
        "4000",
        "3900",
        "10.0",
        "11.5",
        "+1.5",
        "improved",
        "improved",
    ]


def test_demo_command_runs_the_whole_pipeline_and_prints_true_and_measured(tmp_path, monkeypatch, capsys):
    from pipeline.cli.main import main
    from pipeline.demo import design

    monkeypatch.setattr(design, "DEFAULT_DESIGN", TINY)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--log-level", "WARNING"]) == 0
    printed = capsys.readouterr().out
    results = out / "results"
    for name in ("scans.csv", "cohort_summary.csv", "errors.csv", "index.csv", "run.json", "qc/index.html"):
        assert (results / name).is_file(), name
    assert len(list((results / "masks").rglob("*_dseg.nii.gz"))) == 4
    assert len(list((results / "seg").rglob("*_seg.dcm"))) == 4
    with open(results / "scans.csv", newline="") as handle:
        scans = {r["series_uid"]: r for r in csv.DictReader(handle)}
    with open(out / "input" / "truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    assert {r["series_uid"] for r in truth} == set(scans)
    assert {r["patient_id"] for r in scans.values()} == {"T01", "T02"}  # the cohort's IDs, not the DICOM ones
    lines = printed.splitlines()
    for row in truth:
        scan = scans[row["series_uid"]]
        line = next(
            line
            for line in lines
            if line.startswith(row["patient_id"]) and f"{float(row['days_from_first_infusion']):+.1f}" in line
        )
        assert f"{float(row['lesion_pct']):.1f}" in line.split()
        assert f"{float(scan['lesion_pct']):.1f}" in line.split()
        assert scan["phase"] in line.split()
    assert str(results / "qc" / "index.html") in printed
    assert "measured - true lesion %: mean |difference|" in printed and "over 4 scans" in printed

    # A second demo reuses the input and every finished scan.
    assert main(["demo", "--out", str(out), "--log-level", "WARNING"]) == 0
    second = capsys.readouterr().out
    assert "(reused)" in second and "4 ok, 0 failed, 4 reused" in second
