"""The demo cohort: three synthetic patients treated with three infusions two days apart.

Modelled on the motivating study (umbilical-cord mesenchymal stem cell infusions every two days
in COVID-19 pneumonia): infusions on days 0, 2 and 4 at 10:00; a baseline CT the day before the
first infusion, one CT after each of the first two infusions and a follow-up CT two days after
the last one. One patient improves, one stays stable, one worsens. The burdens are lesion
percentages of the lung volume (the truth the demo compares the measurements with).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class DemoScan:
    """One CT of a demo patient."""

    day: float
    """Days from the first infusion (its date-time is ``first_infusion + day``)."""
    lesion_pct: float
    """Requested lesion volume, % of the lung volume."""
    consolidation_fraction: float
    """Share of the lesion volume that is consolidation."""


@dataclass(frozen=True)
class DemoPatient:
    """A synthetic patient: identifiers, body size, anatomy seed and scans."""

    patient_id: str
    """The study's pseudonymous ID (cohort file, output file names)."""
    dicom_patient_id: str
    """The PatientID written into the DICOM files (mapped to ``patient_id`` by the cohort file)."""
    scale: float
    seed: int
    course: str
    """What the burdens do over time (for the reader): improving, stable or worsening."""
    scans: tuple[DemoScan, ...]


@dataclass(frozen=True)
class DemoDesign:
    """The whole demo cohort and how its scans are sampled."""

    patients: tuple[DemoPatient, ...]
    first_infusion: datetime
    infusion_days: tuple[float, ...]
    shape: tuple[int, int, int]
    """(slices, rows, columns) of every scan."""
    spacing: tuple[float, float, float]
    """(x, y, z) voxel spacing in mm."""

    def infusion_times(self) -> tuple[datetime, ...]:
        return tuple(self.first_infusion + timedelta(days=d) for d in self.infusion_days)

    def scan_time(self, scan: DemoScan) -> datetime:
        return self.first_infusion + timedelta(days=scan.day)

    @property
    def n_scans(self) -> int:
        return sum(len(p.scans) for p in self.patients)


#: Scan times in days from the first infusion (day 0, 10:00): day -1 at 11:00, day 1 and day 3 at
#: 14:00 (after the 1st and the 2nd infusion), day 6 at 10:00 (two days after the 3rd).
_DAYS = (-23 / 24, 28 / 24, 76 / 24, 144 / 24)

DEFAULT_DESIGN = DemoDesign(
    patients=(
        DemoPatient(
            patient_id="P01",
            dicom_patient_id="DEMO-0001",
            scale=1.0,
            seed=101,
            course="improving",
            scans=tuple(
                DemoScan(day, pct, cons)
                for day, pct, cons in zip(_DAYS, (24.0, 16.0, 9.0, 4.0), (0.35, 0.3, 0.2, 0.1), strict=True)
            ),
        ),
        DemoPatient(
            patient_id="P02",
            dicom_patient_id="DEMO-0002",
            scale=0.95,
            seed=202,
            course="stable",
            scans=tuple(
                DemoScan(day, pct, cons)
                for day, pct, cons in zip(_DAYS, (10.0, 10.5, 9.5, 10.0), (0.2, 0.2, 0.2, 0.2), strict=True)
            ),
        ),
        DemoPatient(
            patient_id="P03",
            dicom_patient_id="DEMO-0003",
            scale=1.05,
            seed=303,
            course="worsening",
            scans=tuple(
                DemoScan(day, pct, cons)
                for day, pct, cons in zip(_DAYS, (5.0, 9.0, 15.0, 22.0), (0.1, 0.2, 0.3, 0.4), strict=True)
            ),
        ),
    ),
    first_infusion=datetime(2025, 3, 3, 10, 0),
    infusion_days=(0.0, 2.0, 4.0),
    shape=(60, 256, 256),
    spacing=(1.4, 1.4, 5.0),
)
