"""write_reports end to end on synthetic records: schema, linking, flags, determinism, plots, CLI."""

from __future__ import annotations

import csv
import random
from datetime import datetime
from pathlib import Path

import pytest

from metrics.columns import EVENT_COLUMNS, SCAN_COLUMNS, SUMMARY_COLUMNS, names
from metrics.settings import SameDayRule
from metrics.vocabulary import ScanStatus, TimepointFlag
from pipeline.cli.main import main
from pipeline.cohort import read_cohort
from pipeline.ingest.dicom_values import dicom_datetime
from pipeline.reports import load_scan_records, scan_record, write_reports
from tests.pipeline.reports.conftest import meta, metrics_for

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def header(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[0].split(",")


@pytest.fixture
def built(tmp_path, records, cohort_file, settings):
    out = tmp_path / "out"
    paths = write_reports(records, cohort=read_cohort(cohort_file), settings=settings.timepoints, out_dir=out)
    return out, paths


def by_series(rows):
    return {r["series_uid"]: r for r in rows}


def test_files_and_headers(built):
    out, paths = built
    assert paths.scans_csv == out / "scans.csv" and paths.cohort_summary_csv == out / "cohort_summary.csv"
    assert header(out / "scans.csv") == list(names(SCAN_COLUMNS))
    assert header(out / "cohort_summary.csv") == list(names(SUMMARY_COLUMNS))
    assert sorted(paths.patient_csvs) == ["P01", "P02", "P03", "P09"]
    for patient in ("P01", "P02", "P03", "P09"):
        assert header(out / "patients" / f"{patient}.csv") == list(names(SCAN_COLUMNS))
        assert header(out / "patients" / f"{patient}_events.csv") == list(names(EVENT_COLUMNS))


def test_scans_table_linking_and_changes(built):
    out, _ = built
    rows = read(out / "scans.csv")
    assert len(rows) == 9  # nothing dropped
    s = by_series(rows)
    base = s["1.2.1.1"]
    assert (base["phase"], base["lesion_pct"], base["delta_lesion_pct"], base["timepoint_primary"]) == (
        "baseline",
        "37.5000",
        "0.0000",
        "true",
    )
    assert base["days_from_first_infusion"] == "-1.0417"
    dup = s["1.2.1.2"]
    assert (dup["phase"], dup["timepoint_primary"], dup["timepoint_flags"]) == (
        "baseline",
        "false",
        "DUPLICATE_TIMEPOINT",
    )
    assert dup["delta_lesion_pct"] == "2.5000" and dup["baseline_series_uid"] == "1.2.1.1"
    after1 = s["1.2.2.1"]
    assert (after1["phase"], after1["delta_lesion_pct"], after1["relative_change_lesion_pct"], after1["response"]) == (
        "after_dose_1",
        "-7.5000",
        "-20.0000",
        "stable",
    )
    cohort_dated = s["1.2.5.1"]
    assert (cohort_dated["scan_datetime"], cohort_dated["scan_datetime_source"]) == ("2025-03-07T11:00:00", "cohort")
    assert cohort_dated["acquisition_datetime"] == ""
    assert (cohort_dated["phase"], cohort_dated["days_from_first_infusion"], cohort_dated["response"]) == (
        "follow_up",
        "6.0417",
        "improved",
    )
    assert cohort_dated["days_from_last_infusion_before_scan"] == "2.0417"
    assert cohort_dated["delta_ggo_pct"] == "-20.0000" and cohort_dated["relative_change_ggo_pct"] == "-80.0000"
    assert cohort_dated["delta_severity_score"] != ""
    undated = s["1.2.7.1"]
    assert (
        undated["timepoint_flags"] == "NO_SCAN_DATE" and undated["phase"] == "" and undated["lesion_pct"] == "15.0000"
    )


def test_failed_scans_are_listed_with_empty_metrics(built):
    out, _ = built
    failed = by_series(read(out / "scans.csv"))["1.2.6.1"]
    assert (failed["status"], failed["error_code"]) == ("failed", "DECODE_FAILED")
    assert failed["error_message"] == "JPEG 2000 data could not be decoded."
    assert failed["phase"] == "follow_up"  # it has a date, so it is placed in time ...
    for column in ("lung_ml", "lesion_pct", "severity_score", "delta_lesion_pct", "response", "quality_flags"):
        assert failed[column] == "", column  # ... but carries no numbers


def test_patient_mapping_and_not_in_cohort(built):
    out, _ = built
    s = by_series(read(out / "scans.csv"))
    assert (s["2.1"]["patient_id"], s["2.1"]["patient_id_source"]) == ("P02", "dicom_id_map")
    assert (s["2.1"]["phase"], s["2.1"]["days_from_first_infusion"], s["2.1"]["timepoint_flags"]) == (
        "baseline",
        "0.0000",
        "SAME_DAY_AS_INFUSION",
    )
    assert (s["2.2"]["phase"], s["2.2"]["days_from_first_infusion"], s["2.2"]["response"]) == (
        "follow_up",
        "7.0000",
        "stable",
    )
    assert (s["9.1"]["patient_id"], s["9.1"]["timepoint_flags"], s["9.1"]["phase"]) == (
        "P09",
        "PATIENT_NOT_IN_COHORT",
        "",
    )
    assert "HOSP-9" not in (out / "scans.csv").read_text()


def test_patient_tables_in_time_order_and_events(built):
    out, _ = built
    p01 = read(out / "patients" / "P01.csv")
    assert [r["series_uid"] for r in p01] == ["1.2.1.1", "1.2.1.2", "1.2.2.1", "1.2.5.1", "1.2.6.1", "1.2.7.1"]
    assert {r["patient_file_stem"] for r in p01} == {"P01"}
    events = read(out / "patients" / "P01_events.csv")
    assert [(e["event"], e["dose"], e["n_scans_after_dose"], e["event_flags"]) for e in events] == [
        ("admission", "", "", ""),
        ("infusion", "1", "1", ""),
        ("infusion", "2", "0", "NO_SCAN_AFTER_DOSE"),
        ("infusion", "3", "1", ""),
    ]
    assert read(out / "patients" / "P03.csv") == []  # a cohort patient without scans keeps its (empty) table
    (p03_event,) = read(out / "patients" / "P03_events.csv")
    assert p03_event["event_flags"] == "NO_SCAN_AFTER_DOSE"


def test_cohort_summary(built):
    out, _ = built
    rows = read(out / "cohort_summary.csv")
    assert [r["row_type"] for r in rows] == ["patient"] * 4 + ["cohort"]
    p = {r["patient_id"]: r for r in rows[:-1]}
    assert p["P01"]["baseline_lesion_pct"] == "37.5000" and p["P01"]["baseline_series_uid"] == "1.2.1.1"
    assert p["P01"]["last_follow_up_lesion_pct"] == "7.5000"
    assert p["P01"]["response_at_last_follow_up"] == "improved"
    assert p["P01"]["best_delta_lesion_pct"] == "-30.0000"
    assert p["P01"]["days_to_first_improvement"] == "6.0417"
    assert p["P01"]["n_infusions_without_scan"] == "1" and p["P01"]["n_scans"] == "6"
    assert p["P01"]["n_timepoints"] == "4"
    assert set(p["P01"]["patient_flags"].split(";")) == {
        "DUPLICATE_TIMEPOINTS",
        "FAILED_SCANS",
        "INFUSION_WITHOUT_SCAN",
        "SCANS_WITHOUT_DATE",
    }
    assert set(p["P03"]["patient_flags"].split(";")) == {
        "INFUSION_WITHOUT_SCAN",
        "NO_BASELINE",
        "NO_FOLLOW_UP",
        "NO_SCANS",
    }
    assert p["P09"]["patient_flags"] == "NOT_IN_COHORT" and p["P09"]["n_infusions"] == ""
    cohort = rows[-1]
    assert (cohort["cohort_n_patients"], cohort["cohort_n_paired"]) == ("4", "2")
    assert cohort["cohort_median_delta_lesion_pct"] == "-13.7500"
    assert (cohort["wilcoxon_note"], cohort["wilcoxon_p_value"]) == ("too_few_pairs", "")


def test_byte_identical_outputs_for_identical_inputs(tmp_path, records, cohort_file, settings):
    cohort = read_cohort(cohort_file)
    first = write_reports(records, cohort=cohort, settings=settings.timepoints, out_dir=tmp_path / "a", plots=False)
    shuffled = list(records)
    random.Random(4).shuffle(shuffled)
    second = write_reports(shuffled, cohort=cohort, settings=settings.timepoints, out_dir=tmp_path / "b", plots=False)
    # rebuilt from the first run's scans.csv (text cells), as `lunglesion report` does
    rebuilt = write_reports(
        load_scan_records(first.scans_csv),
        cohort=cohort,
        settings=settings.timepoints,
        out_dir=tmp_path / "c",
        plots=False,
    )
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    assert len(files) == 2 + 2 * 4
    for relative in files:
        original = (tmp_path / "a" / relative).read_bytes()
        assert (tmp_path / "b" / relative).read_bytes() == original, relative
        assert (tmp_path / "c" / relative).read_bytes() == original, relative
    assert second.scans_csv.read_bytes() == rebuilt.scans_csv.read_bytes()


@pytest.mark.parametrize(("rule", "doses"), [(SameDayRule.BEFORE, "0"), (SameDayRule.AFTER, "1")])
def test_dicom_date_without_time_is_a_date_only_scan(tmp_path, settings, rule, doses):
    """StudyDate kept, times removed by de-identification: linked by calendar day, no invented 00:00."""
    day = dicom_datetime("20250303", "")
    m, ok = settings.metrics, ScanStatus.OK
    records = [
        scan_record(meta("P01", "1.1", datetime(2025, 2, 28, 9)), metrics=metrics_for(10, m), status=ok),
        scan_record(meta("P01", "1.2", day), metrics=metrics_for(14, m), status=ok),
    ]
    cohort_path = tmp_path / "cohort.csv"
    cohort_path.write_text("patient_id,event,datetime\nP01,infusion,2025-03-03T10:00\n", encoding="utf-8")
    cohort = read_cohort(cohort_path)
    timepoints = settings.timepoints.model_copy(update={"same_day_date_only": rule})
    first = write_reports(records, cohort=cohort, settings=timepoints, out_dir=tmp_path / "a", plots=False)
    rows = by_series(read(first.scans_csv))
    same_day = rows["1.2"]
    assert same_day["scan_datetime"] == same_day["acquisition_datetime"] == same_day["study_datetime"] == "2025-03-03"
    assert same_day["timepoint_flags"] == TimepointFlag.SAME_DAY_AS_INFUSION.value
    assert same_day["doses_before_scan"] == doses
    assert float(same_day["days_from_first_infusion"]) == 0.0  # whole calendar days
    assert rows["1.1"]["scan_datetime"] == "2025-02-28T09:00:00"  # timed scans as before
    assert float(rows["1.1"]["days_from_first_infusion"]).is_integer() is False
    rebuilt = write_reports(
        load_scan_records(first.scans_csv), cohort=cohort, settings=timepoints, out_dir=tmp_path / "b", plots=False
    )
    assert rebuilt.scans_csv.read_bytes() == first.scans_csv.read_bytes()


def test_plots_are_png_files(built):
    out, paths = built
    import matplotlib.image

    assert paths.cohort_plot == out / "cohort_trajectories.png"
    for path in [paths.cohort_plot, *paths.patient_plots.values()]:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000, path.name
        image = matplotlib.image.imread(path)
        assert image.shape[0] >= 400 and image.shape[1] >= 700
    assert sorted(p.name for p in (out / "patients").glob("*.png")) == [
        "P01_trajectory.png",
        "P02_trajectory.png",
        "P03_trajectory.png",
        "P09_trajectory.png",
    ]
    assert not list(out.rglob(".tmp-*"))


def test_unsafe_and_case_clashing_patient_ids_stay_inside(tmp_path, records, settings):
    evil = dict(records[0], patient_id="../../etc/x", series_uid="5.1")
    upper = dict(records[2], patient_id="p01", series_uid="5.2")
    paths = write_reports(
        [evil, upper, records[2]], cohort=None, settings=settings.timepoints, out_dir=tmp_path / "o", plots=False
    )
    patients_dir = (tmp_path / "o" / "patients").resolve()
    for path in [*paths.patient_csvs.values(), *paths.patient_event_csvs.values()]:
        assert path.resolve().parent == patients_dir
    stems = {r["patient_id"]: r["patient_file_stem"] for r in read(paths.scans_csv)}
    assert stems["../../etc/x"].startswith("etc_x-")
    assert stems["P01"] != stems["p01"] and stems["P01"].lower() != stems["p01"].lower()
    assert not (tmp_path / "etc").exists()


def test_without_cohort_timepoint_columns_are_empty(tmp_path, records, settings):
    paths = write_reports(records, cohort=None, settings=settings.timepoints, out_dir=tmp_path / "o", plots=False)
    rows = read(paths.scans_csv)
    assert {r["phase"] for r in rows} == {""} and {r["delta_lesion_pct"] for r in rows} == {""}
    assert by_series(rows)["1.2.1.2"]["timepoint_flags"] == "DUPLICATE_TIMEPOINT"  # duplicates are still resolved
    assert by_series(rows)["2.1"]["patient_id"] == "HOSP-9"


def test_stale_patient_files_are_removed(tmp_path, records, settings):
    out = tmp_path / "o"
    write_reports(records, cohort=None, settings=settings.timepoints, out_dir=out, plots=False)
    assert (out / "patients" / "P09.csv").exists()
    (out / "patients" / "notes.txt").write_text("mine")
    write_reports(records[:2], cohort=None, settings=settings.timepoints, out_dir=out, plots=False)
    assert sorted(p.name for p in (out / "patients").iterdir()) == ["P01.csv", "P01_events.csv", "notes.txt"]


def test_malformed_records_are_refused(tmp_path, records, settings):
    with pytest.raises(ValueError, match="scan record 0, column 'status'"):
        write_reports([dict(records[0], status="done")], cohort=None, settings=settings.timepoints, out_dir=tmp_path)
    with pytest.raises(ValueError, match="scan record 0, column 'lung_ml': could not convert"):
        write_reports([dict(records[0], lung_ml="a lot")], cohort=None, settings=settings.timepoints, out_dir=tmp_path)


def test_cli_report_rebuilds_with_a_cohort(tmp_path, records, cohort_file, settings, capsys):
    run_dir = tmp_path / "run"
    write_reports(records, cohort=None, settings=settings.timepoints, out_dir=run_dir, plots=False)
    assert (
        main(["report", str(run_dir), "--cohort", str(cohort_file), "--out", str(tmp_path / "rebuilt"), "--no-plots"])
        == 0
    )
    rows = by_series(read(tmp_path / "rebuilt" / "scans.csv"))
    assert rows["1.2.2.1"]["phase"] == "after_dose_1" and rows["2.1"]["patient_id"] == "P02"
    assert "wrote" in capsys.readouterr().out


def test_cli_report_exit_codes(tmp_path, records, settings, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "scans.csv: not found" in capsys.readouterr().err
    run_dir = tmp_path / "run"
    write_reports(records, cohort=None, settings=settings.timepoints, out_dir=run_dir, plots=False)
    bad_cohort = tmp_path / "bad.csv"
    bad_cohort.write_text("patient_id,event,datetime\nP01,infusion,2025-03-01T10:00Z\n")
    assert main(["report", str(run_dir), "--cohort", str(bad_cohort)]) == 2
    assert "line 2, column 'datetime'" in capsys.readouterr().err
    text = (run_dir / "scans.csv").read_text().replace(",ok,", ",fine,", 1)
    (run_dir / "scans.csv").write_text(text)
    assert main(["report", str(run_dir)]) == 2
    assert "column 'status'" in capsys.readouterr().err


def test_a_scans_csv_of_an_earlier_version_without_ingest_warnings_is_rebuilt(tmp_path, records, cohort_file, settings):
    """`lunglesion report` on results written before the column existed: rebuilt, the column empty."""
    import csv

    cohort = read_cohort(cohort_file)
    first = write_reports(records, cohort=cohort, settings=settings.timepoints, out_dir=tmp_path / "a", plots=False)
    with first.scans_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    old = tmp_path / "old_scans.csv"
    with old.open("w", newline="") as f:
        fields = [c for c in rows[0] if c != "ingest_warnings"]
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    rebuilt = write_reports(
        load_scan_records(old), cohort=cohort, settings=settings.timepoints, out_dir=tmp_path / "b", plots=False
    )
    with rebuilt.scans_csv.open(newline="") as f:
        again = list(csv.DictReader(f))
    assert len(again) == len(rows) and {r["ingest_warnings"] for r in again} == {""}
    assert [r["lesion_pct"] for r in again] == [r["lesion_pct"] for r in rows]
