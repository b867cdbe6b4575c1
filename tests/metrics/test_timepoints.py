"""Timepoint rules on hand-made patients: phases, baseline window, duplicates, change and response."""

from __future__ import annotations

import pytest

from metrics.settings import ResponseSettings
from metrics.timepoints import Change, ChangeMetric, ScanPoint, change_from, classify_response, link_patient
from metrics.timestamps import parse_event_time
from metrics.vocabulary import EventFlag, PatientFlag, Response, TimepointFlag


def t(text):
    return parse_event_time(text)


def scan(key, when, lesion=None, *, measured=True, preferred=True, series=None, ggo=None, cons=None, score=None):
    values = {
        ChangeMetric.LESION_PCT: lesion,
        ChangeMetric.GGO_PCT: ggo,
        ChangeMetric.CONSOLIDATION_PCT: cons,
        ChangeMetric.SEVERITY_SCORE: score,
    }
    return ScanPoint(
        key=key,
        time=None if when is None else t(when),
        measured=measured,
        preferred=preferred,
        series_uid=series or f"1.2.{key}",
        values=values,
    )


INFUSIONS = [t("2025-03-01T10:00"), t("2025-03-03T10:00"), t("2025-03-05T10:00")]


def by_key(timeline):
    return {s.key: s for s in timeline.scans}


def test_phases_days_and_doses(timepoint_settings):
    scans = [
        scan(1, "2025-02-20T09:00", 40.0),  # older than the 7-day window but not the last: pre
        scan(2, "2025-02-28T09:00", 40.0),  # last before dose 1: baseline
        scan(3, "2025-03-02T09:00", 30.0),  # after dose 1
        scan(4, "2025-03-04T09:00", 20.0),  # after dose 2
        scan(5, "2025-03-10T10:00", 10.0),  # after dose 3 (the last): follow_up
    ]
    timeline = link_patient(scans, infusions=INFUSIONS, settings=timepoint_settings)
    out = by_key(timeline)
    assert [out[k].phase for k in range(1, 6)] == ["pre", "baseline", "after_dose_1", "after_dose_2", "follow_up"]
    assert [out[k].doses_before_scan for k in range(1, 6)] == [0, 0, 1, 2, 3]
    assert out[2].days_from_first_infusion == pytest.approx(-25 / 24)
    assert out[3].days_from_first_infusion == pytest.approx(23 / 24)
    assert out[5].days_from_first_infusion == 9.0
    assert out[2].days_from_last_infusion_before_scan is None
    assert out[4].days_from_last_infusion_before_scan == pytest.approx(23 / 24)
    assert out[5].days_from_last_infusion_before_scan == 5.0
    assert timeline.baseline_key == 2 and out[2].is_baseline
    assert out[5].days_from_baseline == pytest.approx(10 + 1 / 24)
    assert [d.n_scans_after for d in timeline.doses] == [1, 1, 1]
    assert timeline.flags == frozenset()


def test_scan_on_infusion_day_before_and_after_by_time_of_day(timepoint_settings):
    infusions = [t("2025-03-01T10:00"), t("2025-03-08T10:00")]
    scans = [scan(1, "2025-03-01T08:30", 30.0), scan(2, "2025-03-01T15:00", 31.0)]
    out = by_key(link_patient(scans, infusions=infusions, settings=timepoint_settings))
    assert out[1].phase == "baseline" and out[1].days_from_first_infusion == pytest.approx(-1.5 / 24)
    assert out[2].phase == "after_dose_1" and out[2].days_from_first_infusion == pytest.approx(5 / 24)
    assert out[2].days_from_last_infusion_before_scan == pytest.approx(5 / 24)
    assert TimepointFlag.SAME_DAY_AS_INFUSION not in out[1].flags  # both have times: no rule needed


@pytest.mark.parametrize(("rule", "phase", "doses"), [("before", "baseline", 0), ("after", "follow_up", 1)])
def test_date_only_infusion_same_day_rule(timepoint_settings, updated, rule, phase, doses):
    settings = updated(timepoint_settings, same_day_date_only=rule)
    out = by_key(link_patient([scan(1, "2025-03-01T15:00", 12.0)], infusions=[t("2025-03-01")], settings=settings))
    assert out[1].phase == phase and out[1].doses_before_scan == doses
    assert out[1].days_from_first_infusion == 0.0  # whole days when the infusion has no time
    assert TimepointFlag.SAME_DAY_AS_INFUSION in out[1].flags


def test_missing_baseline_outside_window(timepoint_settings):
    scans = [scan(1, "2025-02-20T09:00", 40.0), scan(2, "2025-03-02T09:00", 30.0)]  # 9 days before dose 1
    timeline = link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings)
    out = by_key(timeline)
    assert timeline.baseline_key is None
    assert out[1].phase == "pre" and out[2].phase == "follow_up"
    assert all(TimepointFlag.NO_BASELINE in s.flags for s in timeline.scans)
    assert PatientFlag.NO_BASELINE in timeline.flags
    assert out[2].changes == {} and out[2].response is None


def test_window_edge_and_no_limit(timepoint_settings, updated):
    scans = [scan(1, "2025-02-22T10:00", 40.0), scan(2, "2025-03-02T10:00", 30.0)]  # exactly 7.0 days before
    assert link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings).baseline_key == 1
    late = [scan(1, "2025-02-22T09:59", 40.0), scan(2, "2025-03-02T10:00", 30.0)]
    assert link_patient(late, infusions=INFUSIONS[:1], settings=timepoint_settings).baseline_key is None
    unlimited = updated(timepoint_settings, baseline_window_days=None)
    assert link_patient(late, infusions=INFUSIONS[:1], settings=unlimited).baseline_key == 1


def test_unsorted_input_and_unsorted_infusions(timepoint_settings):
    scans = [
        scan(5, "2025-03-10T10:00", 10.0),
        scan(2, "2025-02-28T09:00", 40.0),
        scan(4, "2025-03-04T09:00", 20.0),
        scan(3, "2025-03-02T09:00", 30.0),
    ]
    timeline = link_patient(scans, infusions=list(reversed(INFUSIONS)), settings=timepoint_settings)
    assert [s.key for s in timeline.scans] == [5, 2, 4, 3]  # input order kept
    out = by_key(timeline)
    assert (out[2].phase, out[3].phase, out[4].phase, out[5].phase) == (
        "baseline",
        "after_dose_1",
        "after_dose_2",
        "follow_up",
    )


def test_two_scans_same_day_are_two_timepoints_when_hours_apart(timepoint_settings):
    infusions = [t("2025-03-01T10:00")]
    scans = [scan(1, "2025-03-05T08:00", 30.0), scan(2, "2025-03-05T17:00", 28.0)]
    out = by_key(link_patient(scans, infusions=infusions, settings=timepoint_settings))
    assert out[1].primary and out[2].primary
    assert TimepointFlag.DUPLICATE_TIMEPOINT not in out[1].flags | out[2].flags


def test_duplicate_series_of_one_acquisition(timepoint_settings):
    """Two kernels 2 minutes apart: the preferred series is primary, the other stays listed with a flag."""
    infusions = [t("2025-03-01T10:00")]
    scans = [
        scan(1, "2025-02-28T09:00", 40.0, preferred=False, series="1.9"),
        scan(2, "2025-02-28T09:02", 42.0, preferred=True, series="1.8"),
        scan(3, "2025-03-05T09:00", 20.0),
    ]
    timeline = link_patient(scans, infusions=infusions, settings=timepoint_settings)
    out = by_key(timeline)
    assert out[2].primary and not out[1].primary
    assert TimepointFlag.DUPLICATE_TIMEPOINT in out[1].flags
    assert out[1].phase == out[2].phase == "baseline"
    assert timeline.baseline_key == 2 and out[2].is_baseline and not out[1].is_baseline
    assert out[3].changes[ChangeMetric.LESION_PCT].delta == -22.0
    assert out[1].changes[ChangeMetric.LESION_PCT].delta == -2.0  # the duplicate's difference is informative
    assert PatientFlag.DUPLICATE_TIMEPOINTS in timeline.flags


def test_duplicate_primary_prefers_measured_scans(timepoint_settings):
    infusions = [t("2025-03-01T10:00")]
    scans = [
        scan(1, "2025-02-28T09:00", None, measured=False, preferred=True),
        scan(2, "2025-02-28T09:05", 42.0, preferred=False),
    ]
    out = by_key(link_patient(scans, infusions=infusions, settings=timepoint_settings))
    assert out[2].primary and out[2].is_baseline and not out[1].primary


def test_failed_last_scan_before_dose_falls_back_to_an_earlier_measured_one(timepoint_settings):
    scans = [
        scan(1, "2025-02-26T09:00", 35.0),
        scan(2, "2025-02-28T09:00", None, measured=False),
        scan(3, "2025-03-02T09:00", 30.0),
    ]
    timeline = link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings)
    out = by_key(timeline)
    assert timeline.baseline_key == 1
    assert out[2].phase == "pre" and out[2].changes == {}
    assert PatientFlag.FAILED_SCANS in timeline.flags


def test_date_only_scans_on_one_day_are_one_timepoint(timepoint_settings):
    scans = [scan(1, "2025-03-05", 30.0, series="1.5"), scan(2, "2025-03-05", 31.0, series="1.4")]
    out = by_key(link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings))
    assert out[2].primary and not out[1].primary  # tie broken by the smaller series UID


def test_scan_without_date_and_patients_without_infusions(timepoint_settings):
    scans = [scan(1, None, 30.0), scan(2, "2025-03-02T09:00", 20.0)]
    timeline = link_patient(scans, infusions=[], settings=timepoint_settings)
    out = by_key(timeline)
    assert TimepointFlag.NO_SCAN_DATE in out[1].flags and out[1].phase is None
    assert all(TimepointFlag.NO_INFUSIONS in s.flags for s in timeline.scans)
    assert out[2].phase is None and out[2].days_from_first_infusion is None
    assert {PatientFlag.NO_INFUSIONS, PatientFlag.SCANS_WITHOUT_DATE} <= timeline.flags
    not_in_cohort = link_patient(scans, infusions=None, settings=timepoint_settings)
    assert all(s.phase is None for s in not_in_cohort.scans)
    assert TimepointFlag.NO_INFUSIONS not in by_key(not_in_cohort)[2].flags


def test_infusions_without_scans(timepoint_settings):
    scans = [scan(1, "2025-02-28T09:00", 40.0), scan(2, "2025-03-04T09:00", 30.0)]  # nothing after doses 1 and 3
    timeline = link_patient(scans, infusions=INFUSIONS, settings=timepoint_settings)
    assert [d.n_scans_after for d in timeline.doses] == [0, 1, 0]
    assert [d.flags for d in timeline.doses] == [
        frozenset({EventFlag.NO_SCAN_AFTER_DOSE}),
        frozenset(),
        frozenset({EventFlag.NO_SCAN_AFTER_DOSE}),
    ]
    assert PatientFlag.INFUSION_WITHOUT_SCAN in timeline.flags
    empty = link_patient([], infusions=INFUSIONS, settings=timepoint_settings)
    assert {
        PatientFlag.NO_SCANS,
        PatientFlag.NO_BASELINE,
        PatientFlag.INFUSION_WITHOUT_SCAN,
        PatientFlag.NO_FOLLOW_UP,
    } <= empty.flags


def test_change_columns_for_every_metric(timepoint_settings):
    scans = [
        scan(1, "2025-02-28T09:00", 20.0, ggo=15.0, cons=5.0, score=10),
        scan(2, "2025-03-06T09:00", 10.0, ggo=10.0, cons=0.0, score=6),
    ]
    out = by_key(link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings))
    changes = out[2].changes
    assert changes[ChangeMetric.LESION_PCT] == Change(-10.0, -50.0)
    assert changes[ChangeMetric.GGO_PCT] == Change(-5.0, pytest.approx(-100 / 3))
    assert changes[ChangeMetric.CONSOLIDATION_PCT] == Change(-5.0, -100.0)
    assert changes[ChangeMetric.SEVERITY_SCORE] == Change(-4, -40.0)
    assert out[1].changes[ChangeMetric.LESION_PCT] == Change(0.0, 0.0)
    assert out[1].response is None and out[2].response is Response.IMPROVED


def test_change_from_zero_and_noise():
    assert change_from(5.0, 0.0) == Change(5.0, None)
    assert change_from(None, 3.0) == Change(None, None)
    assert change_from(8.1234, 5.1234).delta == 3.0  # binary noise removed


RESPONSE = ResponseSettings(absolute_threshold_pp=3.0, relative_threshold_pct=25.0)


@pytest.mark.parametrize(
    ("delta", "relative", "expected"),
    [
        (-3.0, -25.0, Response.IMPROVED),  # both thresholds met exactly
        (-2.9999, -50.0, Response.STABLE),  # absolute not met
        (-10.0, -24.99, Response.STABLE),  # relative not met (large baseline)
        (3.0, 25.0, Response.WORSENED),
        (3.0, None, Response.WORSENED),  # from a 0 % baseline
        (2.0, None, Response.STABLE),
        (0.0, 0.0, Response.STABLE),
        (None, None, None),
    ],
)
def test_response_thresholds(delta, relative, expected):
    assert classify_response(delta, relative, settings=RESPONSE) is expected


def test_invalid_inputs(timepoint_settings):
    with pytest.raises(ValueError, match="unique"):
        link_patient([scan(1, None), scan(1, None)], infusions=None, settings=timepoint_settings)
    with pytest.raises(ValueError, match="same time"):
        link_patient([], infusions=[INFUSIONS[0], INFUSIONS[0]], settings=timepoint_settings)


def test_a_date_only_scan_joins_every_scan_of_its_day(timepoint_settings):
    """Two timed scans hours apart and a date-only scan that day: one time point, not two."""
    scans = [scan(1, "2025-02-27", 10.0), scan(2, "2025-02-27T08:00", 11.0), scan(3, "2025-02-27T20:00", 12.0)]
    timeline = link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings)
    out = by_key(timeline)
    assert [out[k].primary for k in (1, 2, 3)].count(True) == 1
    assert {out[k].phase for k in (1, 2, 3)} == {"baseline"}
    assert all(TimepointFlag.DUPLICATE_TIMEPOINT in out[k].flags for k in (1, 2, 3) if not out[k].primary)


def test_primary_is_not_the_date_only_scan_for_its_invented_midnight(timepoint_settings):
    scans = [scan(1, "2025-02-27", 10.0, series="1.1"), scan(2, "2025-02-27T08:00", 11.0, series="1.9")]
    timeline = link_patient(scans, infusions=INFUSIONS[:1], settings=timepoint_settings)
    out = by_key(timeline)
    assert out[2].primary and not out[1].primary  # the scan with a known time is the earliest known
    assert timeline.baseline_key == 2
    assert out[1].changes[ChangeMetric.LESION_PCT] == change_from(10.0, 11.0)


def test_a_date_only_scan_stays_apart_from_scans_of_another_dose_that_day(timepoint_settings):
    infusions = [t("2025-03-01T10:00")]
    scans = [scan(1, "2025-03-01", 10.0), scan(2, "2025-03-01T08:00", 11.0), scan(3, "2025-03-01T18:00", 12.0)]
    out = by_key(link_patient(scans, infusions=infusions, settings=timepoint_settings))  # date-only: "before"
    assert out[1].doses_before_scan == out[2].doses_before_scan == 0 and out[3].doses_before_scan == 1
    assert out[3].primary and TimepointFlag.DUPLICATE_TIMEPOINT not in out[3].flags
    assert [out[1].primary, out[2].primary] == [False, True]
