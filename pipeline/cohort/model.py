"""Typed content of a cohort file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from metrics.timestamps import EventTime


class ReservedEvent(StrEnum):
    """Event names with a meaning; any other name (``admission``, ``discharge``, ...) is kept as is."""

    INFUSION = "infusion"
    """One dose of the treatment; doses are numbered 1, 2, ... in time order."""
    SCAN = "scan"
    """Not an event: a row that assigns a series or study to the patient (and optionally its time)."""


@dataclass(frozen=True)
class CohortEvent:
    """One treatment or care event of a patient."""

    patient_id: str
    event: str
    time: EventTime
    line: int
    """Line of the cohort file (1 = header)."""


@dataclass(frozen=True)
class ScanOverride:
    """A ``scan`` row: this series or study belongs to ``patient_id`` (and was taken at ``time``)."""

    patient_id: str
    series_uid: str | None
    study_uid: str | None
    time: EventTime | None
    line: int


@dataclass(frozen=True)
class Cohort:
    """Everything a cohort file says, validated.

    Attributes
    ----------
    events
        Treatment events sorted by patient, time, event name.
    patient_ids
        Every patient named in the file, sorted (also those without events).
    series_overrides, study_overrides
        ``scan`` rows keyed by SeriesInstanceUID / StudyInstanceUID.
    dicom_ids
        DICOM PatientID -> cohort patient ID (the ``dicom_patient_id`` column).
    """

    events: tuple[CohortEvent, ...]
    patient_ids: tuple[str, ...]
    series_overrides: Mapping[str, ScanOverride] = field(default_factory=dict)
    study_overrides: Mapping[str, ScanOverride] = field(default_factory=dict)
    dicom_ids: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def _events_by_patient(self) -> dict[str, tuple[CohortEvent, ...]]:
        grouped: dict[str, list[CohortEvent]] = {patient: [] for patient in self.patient_ids}
        for event in self.events:
            grouped.setdefault(event.patient_id, []).append(event)
        return {patient: tuple(events) for patient, events in grouped.items()}

    def __contains__(self, patient_id: object) -> bool:
        return patient_id in self._events_by_patient

    def events_of(self, patient_id: str) -> tuple[CohortEvent, ...]:
        """A patient's events in time order (empty for an unknown patient)."""
        return self._events_by_patient.get(patient_id, ())

    def infusions_of(self, patient_id: str) -> tuple[EventTime, ...]:
        """Infusion times of a patient in time order (dose 1 first)."""
        return tuple(e.time for e in self.events_of(patient_id) if e.event == ReservedEvent.INFUSION.value)
