"""Linking one patient's scans to the infusions: time points, phases, change from baseline, response.

Pure functions over already parsed values; the rules are documented in ``metrics/README.md``
(section "Timepoints") and summarised here:

1. A scan is *after* dose K when :func:`metrics.timestamps.is_after` holds for infusion K;
   ``doses_before_scan`` is the number of such infusions.
2. Dated scans with the same ``doses_before_scan`` that are at most
   ``timepoints.duplicate_window_minutes`` apart (chained) form one *time point*; so do all those
   on a calendar day that holds a date-only scan. Its primary scan is the first by: measured
   (status ok), chosen by the series rules (``preferred_series``), earliest (a scan with a time
   before a date-only one of its day), smallest SeriesInstanceUID.
   The others keep their rows with ``DUPLICATE_TIMEPOINT``.
3. ``baseline`` is the latest time point before the first dose whose primary scan was measured,
   provided it lies at most ``timepoints.baseline_window_days`` before the first dose; every
   other scan before the first dose is ``pre``. After dose K < N: ``after_dose_K``; after dose
   N (the last): ``follow_up``.
4. Change columns are filled for measured scans of the baseline time point and of later ones:
   ``delta = value - baseline value``; ``relative = 100 * delta / baseline value`` (empty when the
   baseline value is 0). ``response`` is given to measured scans after the first dose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from metrics.settings import ResponseSettings, TimepointSettings
from metrics.timestamps import EventTime, days_between, is_after, same_day_ambiguous
from metrics.vocabulary import EventFlag, PatientFlag, PhaseKind, Response, TimepointFlag, phase_label

NOISE_DECIMALS = 9
"""Differences are rounded to 1e-9 to drop binary floating-point noise (changes, Wilcoxon test)."""


class ChangeMetric(StrEnum):
    """Per-scan values followed over time, with the stems of their change columns."""

    LESION_PCT = "lesion_pct"
    GGO_PCT = "ggo_pct"
    CONSOLIDATION_PCT = "consolidation_pct"
    SEVERITY_SCORE = "severity_score"

    @property
    def delta_column(self) -> str:
        return f"delta_{self.value}"

    @property
    def relative_column(self) -> str:
        # relative_change_lesion_pct is an interface name; the score gets an explicit % unit.
        suffix = "_pct" if self is ChangeMetric.SEVERITY_SCORE else ""
        return f"relative_change_{self.value}{suffix}"


@dataclass(frozen=True)
class ScanPoint:
    """What linking needs to know about one scan of a patient."""

    key: int
    """Caller's identifier of the scan (e.g. its row index); returned unchanged."""
    time: EventTime | None
    measured: bool
    """Status ok: the values below exist and the scan can be a baseline or get a response."""
    preferred: bool
    """Chosen by the series-selection rules (duplicate time points prefer it)."""
    series_uid: str
    values: Mapping[ChangeMetric, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    delta: float | None
    relative_pct: float | None


@dataclass(frozen=True)
class ScanTimepoint:
    """Linking result of one scan."""

    key: int
    days_from_first_infusion: float | None = None
    days_from_last_infusion_before_scan: float | None = None
    doses_before_scan: int | None = None
    phase: str | None = None
    primary: bool = True
    is_baseline: bool = False
    baseline_key: int | None = None
    days_from_baseline: float | None = None
    changes: Mapping[ChangeMetric, Change] = field(default_factory=dict)
    response: Response | None = None
    flags: frozenset[TimepointFlag] = frozenset()


@dataclass(frozen=True)
class DoseCoverage:
    """One infusion and the measured primary scans between it and the next infusion."""

    dose: int
    time: EventTime
    n_scans_after: int
    flags: frozenset[EventFlag]


@dataclass(frozen=True)
class PatientTimeline:
    scans: tuple[ScanTimepoint, ...]
    """In the order of the input."""
    baseline_key: int | None
    doses: tuple[DoseCoverage, ...]
    flags: frozenset[PatientFlag]


@dataclass
class _Draft:
    """Mutable collector of one scan's results while linking."""

    days_from_first_infusion: float | None = None
    days_from_last_infusion_before_scan: float | None = None
    doses_before_scan: int | None = None
    phase: str | None = None
    baseline_key: int | None = None
    days_from_baseline: float | None = None
    changes: dict[ChangeMetric, Change] = field(default_factory=dict)
    response: Response | None = None


def classify_response(
    delta_pp: float | None, relative_pct: float | None, *, settings: ResponseSettings
) -> Response | None:
    """improved / stable / worsened from the change of lesion % (both thresholds must be met).

    ``improved``: ``delta <= -absolute`` and ``relative <= -relative threshold``;
    ``worsened``: ``delta >= absolute`` and (``relative >= relative threshold`` or the baseline
    was 0 %, where the relative change is undefined); otherwise ``stable``. ``None`` without a delta.
    """
    if delta_pp is None:
        return None
    if delta_pp <= -settings.absolute_threshold_pp and (
        relative_pct is not None and relative_pct <= -settings.relative_threshold_pct
    ):
        return Response.IMPROVED
    if delta_pp >= settings.absolute_threshold_pp and (
        relative_pct is None or relative_pct >= settings.relative_threshold_pct
    ):
        return Response.WORSENED
    return Response.STABLE


def change_from(value: float | None, baseline: float | None) -> Change:
    """Absolute and relative change of ``value`` from ``baseline`` (``None`` where undefined)."""
    if value is None or baseline is None:
        return Change(None, None)
    # Rounded to 1e-9 to drop binary floating-point noise: a printed change of 3.0000 pp
    # (e.g. 8.1234 - 5.1234) must meet a 3 pp threshold.
    delta = round(value - baseline, NOISE_DECIMALS) + 0.0
    relative = None if baseline == 0 else round(100.0 * delta / baseline, NOISE_DECIMALS) + 0.0
    return Change(delta, relative)


def _group_timepoints(dated: list[ScanPoint], doses: dict[int, int], window_minutes: float) -> list[list[ScanPoint]]:
    """Time points, in time order (see module notes).

    A calendar day holding a date-only scan is one time point with every scan of that day and the
    same doses-before (the date-only scan's time of day is unknown, so it cannot be told apart
    from any of them); other scans chain when at most ``window_minutes`` apart.
    """
    date_only_days = {(doses[s.key], _day(s)) for s in dated if not _time(s).has_time}
    ordered = sorted(dated, key=lambda s: (doses[s.key], s.time, s.series_uid, s.key))
    groups: list[list[ScanPoint]] = []
    day_groups: dict[tuple[int, date], list[ScanPoint]] = {}
    for scan in ordered:
        day_key = (doses[scan.key], _day(scan))
        if day_key in date_only_days:
            if day_key not in day_groups:
                day_groups[day_key] = []
                groups.append(day_groups[day_key])
            day_groups[day_key].append(scan)
            continue
        if groups and _chains(groups[-1][-1], scan, doses, window_minutes, day_groups):
            groups[-1].append(scan)
            continue
        groups.append([scan])
    return groups


def _time(scan: ScanPoint) -> EventTime:
    assert scan.time is not None
    return scan.time


def _day(scan: ScanPoint) -> date:
    return _time(scan).day


def _chains(
    previous: ScanPoint,
    scan: ScanPoint,
    doses: dict[int, int],
    window_minutes: float,
    day_groups: Mapping[tuple[int, date], list[ScanPoint]],
) -> bool:
    """Whether a timed scan continues the time point of the timed scan before it."""
    if doses[previous.key] != doses[scan.key] or (doses[previous.key], _day(previous)) in day_groups:
        return False
    gap = (_time(scan).value - _time(previous).value).total_seconds()
    return gap <= window_minutes * 60.0


def _primary(group: list[ScanPoint]) -> ScanPoint:
    """First by: measured, preferred, earliest (a date-only scan after the timed ones of its day), UID."""
    return min(group, key=lambda s: (not s.measured, not s.preferred, _primary_time_key(s), s.series_uid, s.key))


def _primary_time_key(scan: ScanPoint) -> tuple[date, bool, datetime]:
    """Day, then timed before date-only (whose 00:00 is not a time), then the time of day."""
    moment = _time(scan)
    return moment.day, not moment.has_time, moment.value


def link_patient(
    scans: Sequence[ScanPoint],
    *,
    infusions: Sequence[EventTime] | None,
    settings: TimepointSettings,
) -> PatientTimeline:
    """Timepoint columns of one patient's scans.

    Parameters
    ----------
    scans
        The patient's scans, any order.
    infusions
        The patient's infusion times (any order); ``None`` when the patient is not in the
        cohort file or no cohort file was given (only duplicate time points are resolved then);
        an empty sequence when the cohort lists the patient without infusions.
    settings
        The ``timepoints`` section of the configuration.
    """
    keys = [s.key for s in scans]
    if len(set(keys)) != len(keys):
        raise ValueError("scan keys must be unique within a patient")
    doses_sorted = sorted(infusions) if infusions is not None else []
    for a, b in zip(doses_sorted, doses_sorted[1:], strict=False):
        if a == b:
            raise ValueError(f"two infusions at the same time ({a.iso()})")

    flags: dict[int, set[TimepointFlag]] = {s.key: set() for s in scans}
    out: dict[int, _Draft] = {s.key: _Draft() for s in scans}
    dated = [s for s in scans if s.time is not None]
    for scan in scans:
        if scan.time is None:
            flags[scan.key].add(TimepointFlag.NO_SCAN_DATE)

    # 1. doses before each scan
    doses_before: dict[int, int] = {}
    for scan in dated:
        assert scan.time is not None
        doses_before[scan.key] = sum(
            is_after(scan.time, infusion, same_day=settings.same_day_date_only) for infusion in doses_sorted
        )
        if any(same_day_ambiguous(scan.time, infusion) for infusion in doses_sorted):
            flags[scan.key].add(TimepointFlag.SAME_DAY_AS_INFUSION)

    # 2. time points and their primary scans
    groups = _group_timepoints(dated, doses_before, settings.duplicate_window_minutes)
    primary_of: dict[int, ScanPoint] = {}
    for group in groups:
        primary = _primary(group)
        for scan in group:
            primary_of[scan.key] = primary
            if scan.key != primary.key:
                flags[scan.key].add(TimepointFlag.DUPLICATE_TIMEPOINT)

    # 3. phases and baseline
    baseline_group: list[ScanPoint] | None = None
    patient_flags: set[PatientFlag] = set()
    if infusions is not None and not doses_sorted:
        patient_flags.add(PatientFlag.NO_INFUSIONS)
        for scan in scans:
            flags[scan.key].add(TimepointFlag.NO_INFUSIONS)
    if doses_sorted:
        first = doses_sorted[0]
        pre_groups = [g for g in groups if doses_before[g[0].key] == 0 and _primary(g).measured]
        if pre_groups:
            candidate = pre_groups[-1]  # groups are in time order within doses_before == 0
            lead = _primary(candidate).time
            assert lead is not None
            window = settings.baseline_window_days
            if window is None or days_between(first, lead) <= window:
                baseline_group = candidate
        if baseline_group is None:
            patient_flags.add(PatientFlag.NO_BASELINE)
            for scan in scans:
                flags[scan.key].add(TimepointFlag.NO_BASELINE)
        baseline_keys = {s.key for s in baseline_group} if baseline_group else set()
        n_doses = len(doses_sorted)
        for scan in dated:
            assert scan.time is not None
            k = doses_before[scan.key]
            info = out[scan.key]
            info.doses_before_scan = k
            info.days_from_first_infusion = days_between(scan.time, first)
            if k >= 1:
                info.days_from_last_infusion_before_scan = days_between(scan.time, doses_sorted[k - 1])
            if k == 0:
                kind = PhaseKind.BASELINE if scan.key in baseline_keys else PhaseKind.PRE
                info.phase = phase_label(kind)
            elif k < n_doses:
                info.phase = phase_label(PhaseKind.AFTER_DOSE, k)
            else:
                info.phase = phase_label(PhaseKind.FOLLOW_UP)

    # 4. change from baseline and response
    baseline = _primary(baseline_group) if baseline_group else None
    if baseline is not None:
        assert baseline.time is not None
        for scan in dated:
            assert scan.time is not None
            if not scan.measured:
                continue
            k = doses_before[scan.key]
            in_baseline = baseline_group is not None and scan.key in {s.key for s in baseline_group}
            if k == 0 and not in_baseline:
                continue
            info = out[scan.key]
            info.baseline_key = baseline.key
            info.days_from_baseline = days_between(scan.time, baseline.time)
            changes = {m: change_from(scan.values.get(m), baseline.values.get(m)) for m in ChangeMetric}
            info.changes = changes
            if k >= 1:
                lesion = changes[ChangeMetric.LESION_PCT]
                info.response = classify_response(lesion.delta, lesion.relative_pct, settings=settings.response)

    # 5. coverage of each dose, patient flags
    doses: list[DoseCoverage] = []
    for index, infusion in enumerate(doses_sorted, start=1):
        n_after = sum(
            1
            for scan in dated
            if doses_before[scan.key] == index and scan.measured and primary_of[scan.key].key == scan.key
        )
        dose_flags = frozenset() if n_after else frozenset({EventFlag.NO_SCAN_AFTER_DOSE})
        doses.append(DoseCoverage(index, infusion, n_after, dose_flags))
    if any(d.flags for d in doses):
        patient_flags.add(PatientFlag.INFUSION_WITHOUT_SCAN)
    if not scans:
        patient_flags.add(PatientFlag.NO_SCANS)
    if any(s.time is None for s in scans):
        patient_flags.add(PatientFlag.SCANS_WITHOUT_DATE)
    if any(not s.measured for s in scans):
        patient_flags.add(PatientFlag.FAILED_SCANS)
    if any(TimepointFlag.DUPLICATE_TIMEPOINT in f for f in flags.values()):
        patient_flags.add(PatientFlag.DUPLICATE_TIMEPOINTS)
    if doses_sorted and not any(doses_before[s.key] >= 1 and s.measured for s in dated):
        patient_flags.add(PatientFlag.NO_FOLLOW_UP)

    results = []
    for scan in scans:
        info = out[scan.key]
        primary = primary_of.get(scan.key)
        results.append(
            ScanTimepoint(
                key=scan.key,
                days_from_first_infusion=info.days_from_first_infusion,
                days_from_last_infusion_before_scan=info.days_from_last_infusion_before_scan,
                doses_before_scan=info.doses_before_scan,
                phase=info.phase,
                primary=primary is None or primary.key == scan.key,
                is_baseline=baseline is not None and baseline.key == scan.key,
                baseline_key=info.baseline_key,
                days_from_baseline=info.days_from_baseline,
                changes=info.changes,
                response=info.response,
                flags=frozenset(flags[scan.key]),
            )
        )
    return PatientTimeline(
        scans=tuple(results),
        baseline_key=baseline.key if baseline else None,
        doses=tuple(doses),
        flags=frozenset(patient_flags),
    )
