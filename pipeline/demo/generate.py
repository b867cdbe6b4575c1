"""Write the demo cohort: DICOM series, the cohort CSV and the truth table.

Layout under the input folder::

    dicom/<DICOM PatientID>/<YYYYMMDD>/CT/IM00001.dcm ...   one 5 mm chest CT per visit
    dicom/<DICOM PatientID>/<YYYYMMDD>/SCOUT/IM00001.dcm    the scout of that visit (not analysed)
    cohort.csv                                              infusions (+ admission) per patient
    truth.csv                                               exact volumes of every CT
    demo.json                                               what was generated (reused when unchanged)

Everything is deterministic: the same design writes byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from pipeline.demo.design import DEFAULT_DESIGN, DemoDesign, DemoPatient, DemoScan
from pipeline.errors import ConfigError
from pipeline.io.atomic import write_text_atomic
from pipeline.privacy import safe_path_component

log = logging.getLogger(__name__)

#: Bump when the generator's output changes for the same design (forces regeneration).
GENERATOR_VERSION = "1"
MANIFEST = "demo.json"
COHORT_CSV = "cohort.csv"
TRUTH_CSV = "truth.csv"
DICOM_DIR = "dicom"

TRUTH_COLUMNS = (
    "patient_id",
    "dicom_patient_id",
    "course",
    "scan_datetime",
    "days_from_first_infusion",
    "study_uid",
    "series_uid",
    "lung_ml",
    "ggo_ml",
    "consolidation_ml",
    "lesion_ml",
    "lesion_pct",
    "ggo_pct",
    "consolidation_pct",
)


@dataclass(frozen=True)
class TruthRow:
    """Exact values of one generated CT (from its labels)."""

    patient_id: str
    dicom_patient_id: str
    course: str
    scan_datetime: str
    days_from_first_infusion: float
    study_uid: str
    series_uid: str
    lung_ml: float
    ggo_ml: float
    consolidation_ml: float
    lesion_ml: float
    lesion_pct: float
    ggo_pct: float
    consolidation_pct: float

    def cells(self) -> list[str]:
        values = asdict(self)
        out = []
        for name in TRUTH_COLUMNS:
            value = values[name]
            if isinstance(value, float):
                decimals = 4 if name.endswith("_pct") or name.startswith("days") else 3
                value = f"{value:.{decimals}f}"
            out.append(str(value))
        return out

    @classmethod
    def from_cells(cls, row: dict[str, str]) -> TruthRow:
        kwargs: dict[str, object] = {}
        for name in TRUTH_COLUMNS:
            kwargs[name] = row[name] if name in _TEXT_COLUMNS else float(row[name])
        return cls(**kwargs)  # type: ignore[arg-type]


_TEXT_COLUMNS = frozenset({"patient_id", "dicom_patient_id", "course", "scan_datetime", "study_uid", "series_uid"})


@dataclass(frozen=True)
class DemoInputs:
    """What :func:`write_demo_inputs` produced."""

    folder: Path
    dicom_dir: Path
    cohort_csv: Path
    truth_csv: Path
    truth: tuple[TruthRow, ...]
    reused: bool
    """True when an identical earlier generation was found and kept."""


def design_digest(design: DemoDesign) -> str:
    """SHA-256 of the design and the generator version: equal digests write identical files."""
    text = json.dumps({"generator": GENERATOR_VERSION, "design": asdict(design)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_demo_inputs(folder: Path, *, design: DemoDesign = DEFAULT_DESIGN) -> DemoInputs:
    """Generate the demo cohort into ``folder`` (or keep an identical earlier generation).

    Raises
    ------
    ConfigError
        When ``folder`` exists, is not empty and was not written by the demo (nothing of the
        user's is overwritten).
    """
    folder = Path(folder)
    digest = design_digest(design)
    manifest_path = folder / MANIFEST
    manifest = _read_manifest(manifest_path)
    if manifest is not None and manifest.get("digest") == digest and (folder / TRUTH_CSV).is_file():
        truth = _read_truth(folder / TRUTH_CSV)
        log.info("demo input in %s is up to date (%d CT scans): reused", folder, len(truth))
        return DemoInputs(folder, folder / DICOM_DIR, folder / COHORT_CSV, folder / TRUTH_CSV, truth, reused=True)
    if folder.exists() and any(folder.iterdir()) and manifest is None:
        raise ConfigError(f"{folder} exists and does not hold a lunglesion demo input; choose another --out folder")
    if (folder / DICOM_DIR).exists():
        shutil.rmtree(folder / DICOM_DIR)  # an older demo generation (the manifest says it is ours)
    folder.mkdir(parents=True, exist_ok=True)
    # The manifest is written first without a digest: an interrupted generation is ours but not reused.
    write_text_atomic(manifest_path, json.dumps({"digest": None}) + "\n")
    truth: list[TruthRow] = []
    for patient in design.patients:
        truth.extend(_write_patient(folder / DICOM_DIR, patient, design))
    _write_cohort_csv(folder / COHORT_CSV, design)
    _write_truth_csv(folder / TRUTH_CSV, truth)
    write_text_atomic(
        manifest_path,
        json.dumps({"digest": digest, "generator": GENERATOR_VERSION, "n_scans": len(truth)}, indent=2) + "\n",
    )
    # Returned as written (rounded like the CSV), so a reused generation gives equal rows.
    written = _read_truth(folder / TRUTH_CSV)
    return DemoInputs(folder, folder / DICOM_DIR, folder / COHORT_CSV, folder / TRUTH_CSV, written, reused=False)


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_patient(dicom_dir: Path, patient: DemoPatient, design: DemoDesign) -> list[TruthRow]:
    from pipeline.synthetic import Patient, Series, Study, write_ct_series, write_localizer
    from pipeline.synthetic.other_objects import LOCALIZER_SERIES
    from pipeline.synthetic.thorax import ThoraxSpec, build_thorax

    spec = ThoraxSpec(shape=design.shape, spacing=design.spacing, scale=patient.scale, seed=patient.seed)
    anatomy = build_thorax(spec)
    dicom_patient = Patient(
        patient_id=patient.dicom_patient_id,
        name=f"Demo^{patient.patient_id}",
        birth_date=date(1958 + patient.seed % 20, 1 + patient.seed % 12, 1 + patient.seed % 28),
        sex="O",
    )
    rows = []
    for number, scan in enumerate(patient.scans, start=1):
        when = design.scan_time(scan)
        phantom = anatomy.render(
            lesion_pct=scan.lesion_pct,
            consolidation_fraction=scan.consolidation_fraction,
            noise_seed=patient.seed * 100 + number,
        )
        study = Study(
            study_date=when.date(),
            study_time=(when - timedelta(minutes=5)).time(),
            description="CT CHEST",
            accession_number=f"DEMO{patient.seed:03d}{number:02d}",
            study_id=str(number),
        )
        visit = dicom_dir / safe_path_component(patient.dicom_patient_id) / when.strftime("%Y%m%d")
        scout = replace(LOCALIZER_SERIES, acquisition_time=(when - timedelta(minutes=2)).time())
        write_localizer(visit / "SCOUT", patient=dicom_patient, study=study, series=scout, seed=number)
        written = write_ct_series(
            visit / "CT",
            phantom.hu,
            geometry=phantom.geometry,
            patient=dicom_patient,
            study=study,
            series=Series(
                series_number=2,
                description="CHEST 5.0 B30f",
                kernel="B30f",
                acquisition_time=when.time(),
                slice_thickness=float(design.spacing[2]),
            ),
        )
        truth = phantom.truth
        rows.append(
            TruthRow(
                patient_id=patient.patient_id,
                dicom_patient_id=patient.dicom_patient_id,
                course=patient.course,
                scan_datetime=when.isoformat(timespec="minutes"),
                days_from_first_infusion=scan.day,
                study_uid=written.study_uid,
                series_uid=written.series_uid,
                lung_ml=truth.lung_ml,
                ggo_ml=truth.ggo_ml,
                consolidation_ml=truth.consolidation_ml,
                lesion_ml=truth.lesion_ml,
                lesion_pct=truth.lesion_pct,
                ggo_pct=truth.ggo_pct,
                consolidation_pct=truth.consolidation_pct,
            )
        )
        log.info("wrote demo CT, day %+.2f: true lesion %.2f %%", scan.day, truth.lesion_pct)
    return rows


def _write_cohort_csv(path: Path, design: DemoDesign) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["patient_id", "event", "datetime", "dicom_patient_id", "note"])
    for patient in design.patients:
        admission = design.first_infusion.date() - timedelta(days=2)
        writer.writerow(
            [
                patient.patient_id,
                "admission",
                admission.isoformat(),
                patient.dicom_patient_id,
                f"synthetic demo patient, {patient.course}",
            ]
        )
        for dose, moment in enumerate(design.infusion_times(), start=1):
            writer.writerow([patient.patient_id, "infusion", _minutes(moment), "", f"UC-MSC dose {dose}"])
    write_text_atomic(path, buffer.getvalue())


def _write_truth_csv(path: Path, rows: list[TruthRow]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRUTH_COLUMNS)
    for row in sorted(rows, key=lambda r: (r.patient_id, r.scan_datetime)):
        writer.writerow(row.cells())
    write_text_atomic(path, buffer.getvalue())


def _read_truth(path: Path) -> tuple[TruthRow, ...]:
    with open(path, newline="", encoding="utf-8") as handle:
        return tuple(TruthRow.from_cells(row) for row in csv.DictReader(handle))


def _minutes(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


__all__ = ["DemoInputs", "TruthRow", "design_digest", "write_demo_inputs", "DemoScan"]
