"""Reading and validating cohort files: accepted forms and errors naming the line and the column."""

from __future__ import annotations

from datetime import datetime

import pytest

from metrics.timestamps import EventTime
from pipeline.cohort import read_cohort
from pipeline.errors import CohortError, ErrorCode, LunglesionError


@pytest.fixture
def write(tmp_path):
    def make(text: str, name: str = "cohort.csv", encoding: str = "utf-8"):
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return make


def test_a_typical_file(write):
    cohort = read_cohort(
        write(
            "patient_id,event,datetime\n"
            "P01,infusion,2025-03-03T10:00\n"  # unsorted on purpose
            "P01,infusion,2025-03-01T10:00\n"
            "P01,Admission,2025-02-27\n"
            "P02,infusion,20250305\n"
        )
    )
    assert cohort.patient_ids == ("P01", "P02")
    assert cohort.infusions_of("P01") == (
        EventTime(datetime(2025, 3, 1, 10), True),
        EventTime(datetime(2025, 3, 3, 10), True),
    )
    assert cohort.infusions_of("P02") == (EventTime(datetime(2025, 3, 5), False),)
    assert [e.event for e in cohort.events_of("P01")] == ["admission", "infusion", "infusion"]
    assert [e.line for e in cohort.events_of("P01")] == [4, 3, 2]
    assert "P02" in cohort and "P03" not in cohort


def test_semicolon_bom_comments_blank_lines_and_header_case(write):
    text = (
        "# exported from the trial database\n\nPatient_ID ; Event ; DateTime\nP01;infusion;2025-03-01 10:00\n\n# done\n"
    )
    cohort = read_cohort(write(text, encoding="utf-8-sig"))
    assert cohort.infusions_of("P01") == (EventTime(datetime(2025, 3, 1, 10), True),)


def test_scan_rows_and_dicom_patient_ids(write):
    cohort = read_cohort(
        write(
            "patient_id,event,datetime,series_uid,study_uid,dicom_patient_id,note\n"
            "S001,infusion,2025-03-01T10:00,,,HOSP123,first dose\n"
            "S001,scan,2025-03-02T09:00,1.2.3.4,,,dates removed by de-identification\n"
            "S001,scan,,,1.2.9,,assign the whole study\n"
            "S002,infusion,2025-03-01T10:00,,,HOSP456,\n"
            "S002,admission,2025-02-28,,,HOSP457,second hospital\n"
        )
    )
    assert cohort.dicom_ids == {"HOSP123": "S001", "HOSP456": "S002", "HOSP457": "S002"}
    assert cohort.series_overrides["1.2.3.4"].time == EventTime(datetime(2025, 3, 2, 9), True)
    assert cohort.study_overrides["1.2.9"].time is None
    assert cohort.study_overrides["1.2.9"].patient_id == "S001"
    assert [e.event for e in cohort.events_of("S001")] == ["infusion"]  # scan rows are not events


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("patient_id,event\nP01,infusion\n", r"line 1: missing required column\(s\) datetime"),
        ("patient_id,event,datetime,dose\n", r"line 1: unknown column 'dose' \(column 4\)"),
        ("patient_id,event,datetime,event\n", "line 1: column 'event' appears twice"),
        ("patient_id,event,datetime\n", "header but no rows"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("patient_id,event,datetime\n,infusion,2025-03-01\n", "line 2, column 'patient_id': empty"),
        ("patient_id,event,datetime\nP01,,2025-03-01\n", "line 2, column 'event': empty"),
        ("patient_id,event,datetime\nP01,infusion,\n", "line 2, column 'datetime': empty"),
        (
            "patient_id,event,datetime\nP01,infusion,2025-02-30\n",
            "line 2, column 'datetime': '2025-02-30' is not a valid",
        ),
        (
            "patient_id,event,datetime\nP01,infusion,01/03/2025\n",
            "line 2, column 'datetime': '01/03/2025' is not a date",
        ),
        (
            "patient_id,event,datetime\nP01,infusion,2025-03-01T10:00+01:00\n",
            "line 2, column 'datetime': .*time-zone offset",
        ),
        ("patient_id,event,datetime\nP01,infusion,2025-03-01,x\n", "line 2: 4 values for 3 columns"),
        ("patient_id,event,datetime,series_uid\nP01,scan,2025-03-01,\n", "line 2: a 'scan' row needs a series_uid"),
        (
            "patient_id,event,datetime,series_uid\nP01,infusion,2025-03-01,1.2.3\n",
            "line 2: series_uid/study_uid belong",
        ),
        ("patient_id,event,datetime,study_uid\nP01,scan,,1.2.abc\n", "line 2, column 'study_uid': not a DICOM UID"),
        (
            "patient_id,event,datetime\nP01,infusion,2025-03-01T10:00\nP01,infusion,2025-03-01 10:00\n",
            "line 3: repeats the 'infusion' event of line 2",
        ),
        (
            "patient_id,event,datetime,series_uid\nP01,scan,,1.2.3\nP02,scan,,1.2.3\n",
            "line 3, column 'series_uid': the same UID is already assigned on line 2",
        ),
        (
            "patient_id,event,datetime,dicom_patient_id\nP01,infusion,2025-03-01,H1\nP02,infusion,2025-03-01,H1\n",
            "line 3, column 'dicom_patient_id': this DICOM PatientID is already mapped to another patient on line 2",
        ),
        (
            "patient_id,event,datetime\nP01,infusion,2025-03-01\nP01,infusion,2025-03-01T18:00\n",
            "line 3, column 'datetime': two infusions of one patient on the same day",
        ),
    ],
)
def test_invalid_files_name_the_line_and_column(write, text, message):
    path = write(text)
    with pytest.raises(CohortError, match=message) as info:
        read_cohort(path)
    assert info.value.code is ErrorCode.COHORT_INVALID
    assert str(path) in info.value.message


def test_messages_do_not_repeat_patient_ids(write):
    path = write("patient_id,event,datetime\nSECRET-ID-77,infusion,2025-99-01\n")
    with pytest.raises(CohortError) as info:
        read_cohort(path)
    assert "SECRET-ID-77" not in info.value.message


def test_not_utf8(write):
    with pytest.raises(CohortError, match="line 2: not UTF-8"):
        read_cohort(write("patient_id,event,datetime\nM\xfcller,infusion,2025-03-01\n", encoding="latin-1"))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(LunglesionError) as info:
        read_cohort(tmp_path / "absent.csv")
    assert info.value.code is ErrorCode.INPUT_NOT_FOUND
    with pytest.raises(CohortError, match="is a folder"):
        read_cohort(tmp_path)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (  # an opening quote without its closing one swallows the following rows into one cell
            "patient_id,event,datetime,note\n"
            'P01,infusion,2025-03-01T10:00,"first dose\n'
            "P01,infusion,2025-03-03T10:00,\n"
            'P01,infusion,2025-03-05T10:00,second "ok"\n'
            "P02,infusion,2025-03-05T10:00,\n",
            2,
        ),
        ('patient_id,event,datetime,note\nP01,infusion,2025-03-01T10:00,\nP01,infusion,2025-03-03T10:00,"x\n', 3),
        ('patient_id,event,datetime,note\nP01,infusion,2025-03-01T10:00,"6" dose\n', 2),
        (  # well-formed CSV, but a record over several lines hides rows just as well
            'patient_id,event,datetime,note\nP01,infusion,2025-03-01T10:00,"first\nP01,infusion,2025-03-03T10:00,"\n',
            2,
        ),
    ],
)
def test_unbalanced_quotes_are_refused_with_the_line(write, text, line):
    path = write(text)
    with pytest.raises(CohortError, match=rf"line {line}: .*unbalanced quote") as info:
        read_cohort(path)
    assert info.value.code is ErrorCode.COHORT_INVALID


def test_quotes_inside_values_and_quoted_values_on_one_line(write):
    cohort = read_cohort(
        write('patient_id,event,datetime,note\nP01,infusion,2025-03-01T10:00,6" dose\n"P01",infusion,20250303,"a, b"\n')
    )
    assert len(cohort.infusions_of("P01")) == 2


@pytest.mark.parametrize("name", ["Infusion 2", "infusoin", "infusions", "infsuion", "ifusion", "dose", "2nd dose"])
def test_misspelt_infusions_are_refused(write, name):
    text = f"patient_id,event,datetime\nP01,infusion,2025-03-01T10:00\nP01,{name},2025-03-03T10:00\n"
    with pytest.raises(CohortError, match=r"line 3, column 'event': .*looks like an infusion.*'infusion'"):
        read_cohort(write(text))


@pytest.mark.parametrize("name", ["INFUSION", " Infusion ", "admission", "ICU admission", "inclusion", "transfusion"])
def test_other_event_names_and_infusion_in_any_case_are_accepted(write, name):
    cohort = read_cohort(write(f"patient_id,event,datetime\nP01,infusion,2025-03-01T10:00\nP01,{name},2025-03-03\n"))
    expected = 2 if name.strip().lower() == "infusion" else 1
    assert len(cohort.infusions_of("P01")) == expected
    assert [e.event for e in cohort.events_of("P01")][-1] == " ".join(name.lower().split())


def test_dicom_patient_id_that_is_another_patients_id_is_refused(write):
    path = write(
        "patient_id,event,datetime,dicom_patient_id\n"
        "SECRET-A,infusion,2025-04-01T10:00,\n"
        "SECRET-B,infusion,2025-03-01T10:00,SECRET-A\n"
    )
    with pytest.raises(
        CohortError, match=r"line 3, column 'dicom_patient_id': .*another cohort patient \(line 2\)"
    ) as info:
        read_cohort(path)
    assert "SECRET" not in info.value.message


def test_dicom_patient_id_equal_to_the_own_patient_id_is_accepted(write):
    cohort = read_cohort(write("patient_id,event,datetime,dicom_patient_id\nP01,infusion,2025-03-01T10:00,P01\n"))
    assert cohort.dicom_ids == {"P01": "P01"}
