"""A small synthetic study: records of measured and failed scans, and a cohort file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from metrics.scan import measure_scan
from metrics.vocabulary import ScanStatus
from pipeline.config import load_settings
from pipeline.errors import ErrorCode
from pipeline.ingest.scan import ScanMetadata
from pipeline.reports import scan_record

COHORT_TEXT = """\
patient_id,event,datetime,series_uid,study_uid,dicom_patient_id
P01,admission,2025-02-27,,,
P01,infusion,2025-03-03T10:00,,,
P01,infusion,2025-03-01T10:00,,,
P01,infusion,2025-03-05T10:00,,,
P02,infusion,2025-03-05,,,HOSP-9
P03,infusion,2025-03-10T08:00,,,
P01,scan,2025-03-07T11:00,1.2.5.1,,
"""


def meta(patient: str, series: str, when: datetime | None, *, study: str | None = None, kernel: str = "B30f"):
    return ScanMetadata(
        scan_id=f"scan-{series}",
        patient_id=patient,
        study_uid=study or f"1.2.9.{series}",
        series_uid=series,
        series_number=3,
        series_description="Thorax 1.0",
        modality="CT",
        study_datetime=when,
        series_datetime=when,
        acquisition_datetime=when,
        manufacturer="ACME",
        manufacturer_model="CT-1",
        kernel=kernel,
        slice_thickness_mm=1.0,
        spacing_mm=(0.8, 0.8, 2.0),
        size=(40, 40, 30),
        n_files=30,
        source_files=(),
    )


def metrics_for(lesion_rows: int, settings):
    """Lungs 2 x 26 x 20 x 11 voxels; lesions fill ``lesion_rows`` of 20 rows (GGO) in the right lung."""
    hu = np.full((30, 40, 40), -1000, np.int16)
    hu[:, 5:35, 5:35] = 40
    lungs = np.zeros(hu.shape, np.uint8)
    lungs[2:28, 10:30, 8:19] = 1
    lungs[2:28, 10:30, 21:32] = 2
    hu[lungs > 0] = -850
    lesions = np.zeros_like(lungs)
    lesions[2:28, 10 : 10 + lesion_rows, 8:19] = 1
    lesions[2:28, 10 : 10 + lesion_rows // 2, 21:32] = 2
    return measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=lesions,
        spacing_zyx=(2.0, 0.8, 0.8),
        superior_sign=1,
        slice_thickness_mm=1.0,
        settings=settings,
    )


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture(scope="session")
def records(settings):
    """Three cohort patients, one patient outside the cohort, a failed scan, an undated scan, a duplicate."""
    m = settings.metrics
    ok = ScanStatus.OK
    d = datetime
    return [
        scan_record(meta("P01", "1.2.1.1", d(2025, 2, 28, 9)), metrics=metrics_for(10, m), status=ok),
        # second kernel of the same acquisition, not the one the series rules chose
        scan_record(
            meta("P01", "1.2.1.2", d(2025, 2, 28, 9), study="1.2.9.1.2.1.1", kernel="B70f"),
            metrics=metrics_for(11, m),
            status=ok,
            preferred_series=False,
        ),
        scan_record(meta("P01", "1.2.2.1", d(2025, 3, 2, 9)), metrics=metrics_for(8, m), status=ok),
        # dose 2 (2025-03-03) has no scan before dose 3
        scan_record(meta("P01", "1.2.5.1", None), metrics=metrics_for(2, m), status=ok),  # dated by the cohort
        scan_record(
            meta("P01", "1.2.6.1", d(2025, 3, 9, 9)),
            metrics=None,
            status=ScanStatus.FAILED,
            error_code=ErrorCode.DECODE_FAILED,
            error_message="JPEG 2000 data could not be decoded.",
        ),
        scan_record(meta("P01", "1.2.7.1", None), metrics=metrics_for(4, m), status=ok),  # no date at all
        # P02 is known to the scanner as HOSP-9; scanned on the (date-only) infusion day and later
        scan_record(meta("HOSP-9", "2.1", d(2025, 3, 5, 8)), metrics=metrics_for(6, m), status=ok),
        scan_record(meta("HOSP-9", "2.2", d(2025, 3, 12, 8)), metrics=metrics_for(7, m), status=ok),
        # not in the cohort file
        scan_record(meta("P09", "9.1", d(2025, 3, 1, 12)), metrics=metrics_for(5, m), status=ok),
    ]


@pytest.fixture
def cohort_file(tmp_path) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text(COHORT_TEXT, encoding="utf-8")
    return path
