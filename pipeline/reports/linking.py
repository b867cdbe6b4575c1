"""From per-scan records and a cohort to the rows of every table (no file I/O here).

Steps, per record: find the patient (cohort ``scan`` row by series, then by study, then the
``dicom_patient_id`` map, else the record's own ``patient_id``), find the scan's date-time
(cohort ``scan`` row, else acquisition, series, study date-time), then link each patient's
scans with :func:`metrics.timepoints.link_patient` and summarise them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from metrics.settings import TimepointSettings
from metrics.summary import summarize_cohort, summarize_patient
from metrics.timepoints import ChangeMetric, PatientTimeline, ScanPoint, link_patient
from metrics.timestamps import EventTime, days_between
from metrics.vocabulary import DatetimeSource, PatientIdSource, ScanStatus, TimepointFlag
from pipeline.cohort.model import Cohort, CohortEvent, ReservedEvent
from pipeline.privacy import safe_path_component, short_hash
from pipeline.reports.records import normalize_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientTables:
    """Everything written for one patient."""

    patient_id: str
    file_stem: str
    scan_rows: tuple[dict[str, object], ...]
    """Linked scan rows in time order (undated scans last)."""
    event_rows: tuple[dict[str, object], ...]
    summary_row: dict[str, object]
    timeline: PatientTimeline
    infusions: tuple[EventTime, ...]


@dataclass(frozen=True)
class LinkedTables:
    scan_rows: tuple[dict[str, object], ...]
    """All scans, sorted by patient and time."""
    patients: tuple[PatientTables, ...]
    """Sorted by patient ID."""
    cohort_row: dict[str, object]


def resolve_patient(record: Mapping[str, object], cohort: Cohort | None) -> tuple[str, PatientIdSource]:
    """The patient a record belongs to, and how that was found."""
    patient = str(record.get("patient_id") or "")
    if cohort is None:
        return patient, PatientIdSource.AS_GIVEN
    series = cohort.series_overrides.get(str(record.get("series_uid") or ""))
    if series is not None:
        return series.patient_id, PatientIdSource.SERIES_OVERRIDE
    study = cohort.study_overrides.get(str(record.get("study_uid") or ""))
    if study is not None:
        return study.patient_id, PatientIdSource.STUDY_OVERRIDE
    if patient in cohort.dicom_ids:
        return cohort.dicom_ids[patient], PatientIdSource.DICOM_ID_MAP
    return patient, PatientIdSource.AS_GIVEN


def resolve_time(record: Mapping[str, object], cohort: Cohort | None) -> tuple[EventTime | None, DatetimeSource | None]:
    """The scan's date-time for linking, and where it came from."""
    if cohort is not None:
        for override in (
            cohort.series_overrides.get(str(record.get("series_uid") or "")),
            cohort.study_overrides.get(str(record.get("study_uid") or "")),
        ):
            if override is not None and override.time is not None:
                return override.time, DatetimeSource.COHORT
    found = [
        (value, source)
        for column, source in (
            ("acquisition_datetime", DatetimeSource.ACQUISITION),
            ("series_datetime", DatetimeSource.SERIES),
            ("study_datetime", DatetimeSource.STUDY),
        )
        if isinstance(value := record.get(column), EventTime)
    ]
    # A time of day, where any of the three kept one on the same day, beats a date-only value.
    if found:
        first_day = found[0][0].day
        timed = [item for item in found if item[0].has_time and item[0].day == first_day]
        return (timed or found)[0]
    return None, None


def file_stems(patient_ids: Sequence[str]) -> dict[str, str]:
    """Safe, unique file-name stems (also on case-insensitive file systems) for patient IDs."""
    stems = {patient: safe_path_component(patient) for patient in sorted(set(patient_ids))}
    folded: dict[str, list[str]] = {}
    for patient, stem in stems.items():
        folded.setdefault(stem.lower(), []).append(patient)
    for clashing in folded.values():
        if len(clashing) > 1:
            for patient in clashing:
                stems[patient] = f"{stems[patient]}-{short_hash(patient, length=8)}"
    return stems


def _sort_key(row: Mapping[str, object]) -> tuple:
    """Time order; undated scans last; ties by study, series and scan id."""
    moment = row.get("scan_datetime")
    assert moment is None or isinstance(moment, EventTime)
    return (
        moment is None,
        moment.value if moment else datetime.min,
        str(row.get("study_uid") or ""),
        str(row.get("series_uid") or ""),
        str(row.get("scan_id") or ""),
    )


def _event_rows(
    patient: str, stem: str, events: Sequence[CohortEvent], timeline: PatientTimeline
) -> list[dict[str, object]]:
    infusions = [e for e in events if e.event == ReservedEvent.INFUSION.value]
    first = infusions[0].time if infusions else None
    coverage = {d.time: d for d in timeline.doses}
    rows = []
    for event in events:
        dose = coverage.get(event.time) if event.event == ReservedEvent.INFUSION.value else None
        rows.append(
            {
                "patient_id": patient,
                "patient_file_stem": stem,
                "event": event.event,
                "dose": dose.dose if dose else None,
                "datetime": event.time,
                "days_from_first_infusion": days_between(event.time, first) if first else None,
                "n_scans_after_dose": dose.n_scans_after if dose else None,
                "event_flags": tuple(sorted(f.value for f in dose.flags)) if dose else (),
                "cohort_line": event.line,
            }
        )
    return rows


def link_records(
    records: Sequence[Mapping[str, object]],
    *,
    cohort: Cohort | None,
    settings: TimepointSettings,
) -> LinkedTables:
    """Rows of ``scans.csv``, of each patient's files and of ``cohort_summary.csv``.

    Raises
    ------
    ValueError
        If a record is malformed (naming the record and column).
    """
    rows = [normalize_record(record, index=i) for i, record in enumerate(records)]
    for record, row in zip(records, rows, strict=True):
        patient, id_source = resolve_patient(row, cohort)
        if id_source is PatientIdSource.AS_GIVEN and record.get("patient_id_source") == PatientIdSource.DICOM_ID_MAP:
            # rebuilt from a scans.csv whose patient_id an earlier build already mapped (the DICOM
            # PatientID is deliberately not kept in the outputs)
            id_source = PatientIdSource.DICOM_ID_MAP
        moment, time_source = resolve_time(row, cohort)
        row["patient_id"] = patient
        row["patient_id_source"] = id_source.value
        row["scan_datetime"] = moment
        row["scan_datetime_source"] = time_source.value if time_source else None

    patient_ids = {str(row["patient_id"]) for row in rows}
    if cohort is not None:
        patient_ids.update(cohort.patient_ids)
    stems = file_stems(sorted(patient_ids))
    by_patient: dict[str, list[dict[str, object]]] = {p: [] for p in sorted(patient_ids)}
    for row in rows:
        by_patient[str(row["patient_id"])].append(row)

    patients: list[PatientTables] = []
    for patient, patient_rows in by_patient.items():
        patient_rows.sort(key=_sort_key)
        in_cohort = None if cohort is None else patient in cohort
        infusions = cohort.infusions_of(patient) if cohort is not None and in_cohort else None
        points = [
            ScanPoint(
                key=index,
                time=row["scan_datetime"],  # type: ignore[arg-type]
                measured=row["status"] == ScanStatus.OK.value,
                preferred=bool(row["preferred_series"]),
                series_uid=str(row.get("series_uid") or ""),
                values={metric: row.get(metric.value) for metric in ChangeMetric},  # type: ignore[misc]
            )
            for index, row in enumerate(patient_rows)
        ]
        timeline = link_patient(points, infusions=infusions, settings=settings)
        for row, linked in zip(patient_rows, timeline.scans, strict=True):
            flags = set(linked.flags)
            if in_cohort is False:
                flags.add(TimepointFlag.PATIENT_NOT_IN_COHORT)
            baseline_row = patient_rows[linked.baseline_key] if linked.baseline_key is not None else None
            row.update(
                {
                    "patient_file_stem": stems[patient],
                    "timepoint_primary": linked.primary,
                    "timepoint_flags": tuple(sorted(f.value for f in flags)),
                    "doses_before_scan": linked.doses_before_scan,
                    "days_from_first_infusion": linked.days_from_first_infusion,
                    "days_from_last_infusion_before_scan": linked.days_from_last_infusion_before_scan,
                    "phase": linked.phase,
                    "baseline_series_uid": baseline_row.get("series_uid") if baseline_row else None,
                    "days_from_baseline": linked.days_from_baseline,
                    "response": linked.response.value if linked.response else None,
                }
            )
            for metric in ChangeMetric:
                change = linked.changes.get(metric)
                row[metric.delta_column] = change.delta if change else None
                row[metric.relative_column] = change.relative_pct if change else None
        events = cohort.events_of(patient) if cohort is not None else ()
        summary = summarize_patient(
            patient_id=patient,
            file_stem=stems[patient],
            rows=patient_rows,
            timeline=timeline,
            infusions=infusions,
            in_cohort=in_cohort,
        )
        patients.append(
            PatientTables(
                patient_id=patient,
                file_stem=stems[patient],
                scan_rows=tuple(patient_rows),
                event_rows=tuple(_event_rows(patient, stems[patient], events, timeline)),
                summary_row=summary,
                timeline=timeline,
                infusions=tuple(infusions or ()),
            )
        )

    all_rows = tuple(row for patient in patients for row in patient.scan_rows)
    cohort_row = summarize_cohort(
        [p.summary_row for p in patients],
        min_pairs=settings.cohort_test_min_pairs,
    )
    log.info(
        "linked %d scan records of %d patients (%d baselines)",
        len(all_rows),
        len(patients),
        sum(1 for p in patients if p.timeline.baseline_key is not None),
    )
    return LinkedTables(scan_rows=all_rows, patients=tuple(patients), cohort_row=cohort_row)
