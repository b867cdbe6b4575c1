"""Generated DICOM cohorts and helpers for the end-to-end tests of ``lunglesion run``.

Every run goes through the installed console script (``lunglesion`` next to ``sys.executable``)
with the packaged default configuration (the shipped segmentation model) unless a test says
otherwise. Inputs are written once per module: a small synthetic thorax (160 x 160 x 56 at
2.2 x 2.2 x 5 mm) from :mod:`pipeline.synthetic.thorax`, three scans of two patients.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.synthetic import Geometry, Patient, Series, Study, write_ct_series
from pipeline.synthetic.thorax import ThoraxAnatomy, ThoraxSpec, build_thorax

LUNGLESION = Path(sys.executable).with_name("lunglesion")

#: Identifiers that must never leak into pseudonymised outputs; long and unusual so that a
#: search through binary files cannot find them by chance.
DICOM_ID_A = "LLTEST-DICOMID-7731"
COHORT_ID_A = "LLTEST-COHORTID-4419"
NAME_A = "Testperson^Annabella"
DICOM_ID_EVIL = "../../etc/x"
NAME_EVIL = "Testperson^Evilbert"

TEST_SPEC = ThoraxSpec(shape=(56, 160, 160), spacing=(2.2, 2.2, 5.0), scale=0.92, seed=5)


@dataclass(frozen=True)
class ScanOnDisk:
    """One written CT series and its exact labels' volumes."""

    patient_id: str
    series_uid: str
    study_uid: str
    files: tuple[Path, ...]
    lesion_pct: float


@dataclass(frozen=True)
class CohortInput:
    """The module's input folder: DICOM under ``dicom``, a cohort file, the scans written."""

    root: Path
    dicom: Path
    cohort: Path
    scans: tuple[ScanOnDisk, ...]


def run_cli(*args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``lunglesion ARGS`` through the console script; output captured as text."""
    return subprocess.run(
        [str(LUNGLESION), *(str(a) for a in args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def write_scan(
    folder: Path,
    anatomy: ThoraxAnatomy,
    *,
    patient: Patient,
    when: datetime,
    lesion_pct: float,
    noise_seed: int,
    geometry: Geometry | None = None,
) -> ScanOnDisk:
    """Render ``anatomy`` with ``lesion_pct`` and write it as a 5 mm CT series in ``folder``."""
    phantom = anatomy.render(lesion_pct=lesion_pct, consolidation_fraction=0.25, noise_seed=noise_seed)
    written = write_ct_series(
        folder,
        phantom.hu,
        geometry=geometry or phantom.geometry,
        patient=patient,
        study=Study(study_date=when.date(), study_time=when.time(), description="CT CHEST"),
        series=Series(series_number=2, description="CHEST 5.0 B30f", acquisition_time=when.time(), slice_thickness=5.0),
    )
    truth = phantom.truth
    return ScanOnDisk(patient.patient_id, written.series_uid, written.study_uid, written.paths, truth.lesion_pct)


def _write_cohort_input(root: Path, anatomy: ThoraxAnatomy) -> CohortInput:
    """Patient A (mapped to a cohort ID, two scans around two infusions) and a patient whose
    DICOM PatientID is ``../../etc/x`` (not in the cohort file, one scan)."""
    a = Patient(patient_id=DICOM_ID_A, name=NAME_A)
    evil = Patient(patient_id=DICOM_ID_EVIL, name=NAME_EVIL)
    scans = (
        write_scan(
            root / "dicom" / "a1", anatomy, patient=a, when=datetime(2025, 3, 2, 11, 0), lesion_pct=12.0, noise_seed=1
        ),
        write_scan(
            root / "dicom" / "a2", anatomy, patient=a, when=datetime(2025, 3, 6, 14, 0), lesion_pct=5.0, noise_seed=2
        ),
        write_scan(
            root / "dicom" / "b1", anatomy, patient=evil, when=datetime(2025, 3, 2, 9, 30), lesion_pct=8.0, noise_seed=3
        ),
    )
    cohort = root / "cohort.csv"
    cohort.write_text(
        "patient_id,event,datetime,dicom_patient_id\n"
        f"{COHORT_ID_A},infusion,2025-03-03T10:00,{DICOM_ID_A}\n"
        f"{COHORT_ID_A},infusion,2025-03-05T10:00,\n",
        encoding="utf-8",
    )
    return CohortInput(root=root, dicom=root / "dicom", cohort=cohort, scans=scans)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def csv_tables(out_dir: Path) -> dict[str, bytes]:
    """Every CSV table a run wrote (relative path -> bytes); per-scan state files excluded."""
    return {
        path.relative_to(out_dir).as_posix(): path.read_bytes()
        for path in sorted(out_dir.rglob("*.csv"))
        if "scans" not in path.relative_to(out_dir).parts[:-1]
    }


def per_scan_files(out_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every per-scan file (state, masks, SEG, QC pictures): relative path -> (bytes, mtime_ns)."""
    files = {}
    for folder in ("scans", "masks", "seg", "qc"):
        for path in sorted((out_dir / folder).rglob("*")):
            if path.is_file() and path.name != "index.html":
                files[path.relative_to(out_dir).as_posix()] = (path.read_bytes(), path.stat().st_mtime_ns)
    return files


@dataclass(frozen=True)
class FinishedRun:
    """A finished ``lunglesion run``: its output folder and process result."""

    out: Path
    returncode: int
    stdout: str
    stderr: str


def finished_run(out: Path, *args: object) -> FinishedRun:
    result = run_cli("run", *args, "--out", out)
    return FinishedRun(out=out, returncode=result.returncode, stdout=result.stdout, stderr=result.stderr)


ALL_OUTPUTS = "csv,nifti,seg,qc"


@pytest.fixture(scope="session")
def session_anatomy() -> ThoraxAnatomy:
    return build_thorax(TEST_SPEC)


@pytest.fixture(scope="session")
def reference_input(tmp_path_factory, session_anatomy) -> CohortInput:
    """The input every comparison run shares (index.csv holds input paths, so runs compare only on one input)."""
    return _write_cohort_input(tmp_path_factory.mktemp("reference_input"), session_anatomy)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, reference_input) -> FinishedRun:
    """One uninterrupted run of the reference input with every output, one worker."""
    out = tmp_path_factory.mktemp("reference_run") / "out"
    return finished_run(
        out, reference_input.dicom, "--cohort", reference_input.cohort, "--outputs", ALL_OUTPUTS, "--workers", 1
    )
