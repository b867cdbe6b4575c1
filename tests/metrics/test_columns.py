"""The column schema: interface names, units in names, README in sync, metrics and schema agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import metrics
from metrics.columns import (
    EVENT_COLUMNS,
    INTERFACE_SCAN_COLUMNS,
    README_TABLES,
    SCAN_COLUMNS,
    SUMMARY_COLUMNS,
    Kind,
    Source,
    names,
    readme_block,
    scan_columns_from,
)
from metrics.scan import measure_scan

README = Path(metrics.__file__).with_name("README.md")

ISSUE_INTERFACE = (
    "patient_id, study_uid, series_uid, acquisition_datetime, status, error_code, lung_ml, lung_right_ml, "
    "lung_left_ml, ggo_ml, consolidation_ml, lesion_ml, lesion_pct, ggo_pct, consolidation_pct, lesion_right_pct, "
    "lesion_left_pct, severity_score, days_from_first_infusion, phase, delta_lesion_pct, "
    "relative_change_lesion_pct, response"
)


def test_interface_columns_come_first_with_their_exact_names():
    assert INTERFACE_SCAN_COLUMNS == tuple(ISSUE_INTERFACE.split(", "))
    assert names(SCAN_COLUMNS)[: len(INTERFACE_SCAN_COLUMNS)] == INTERFACE_SCAN_COLUMNS


def test_units_are_in_the_names():
    suffix_unit = {"_ml": "mL", "_pct": "%", "_hu": "HU", "_mm": "mm"}
    for column in SCAN_COLUMNS + SUMMARY_COLUMNS + EVENT_COLUMNS:
        if column.name.startswith(("delta_", "cohort_median_delta", "best_delta_lesion", "last_follow_up_delta")):
            assert column.unit in ("pp", "points"), column.name
            continue
        for suffix, unit in suffix_unit.items():
            if column.name.endswith(suffix):
                assert column.unit == unit, column.name
        if column.unit == "days":
            assert "days" in column.name, column.name
        if column.kind is Kind.FLOAT and column.unit in ("mL", "%", "HU", "mm"):
            assert any(column.name.endswith(s) for s in suffix_unit), column.name


def test_metric_columns_are_exactly_what_measure_scan_returns(default_metrics):
    hu = np.full((3, 4, 4), -800, np.int16)
    lungs = np.ones((3, 4, 4), np.uint8)
    row = measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=np.zeros_like(lungs),
        spacing_zyx=(1, 1, 1),
        superior_sign=1,
        slice_thickness_mm=1.0,
        settings=default_metrics,
    ).as_row()
    metric_names = [c.name for c in scan_columns_from(Source.METRIC)]
    assert sorted(row) == sorted(metric_names)


def test_readme_documents_every_column_as_generated():
    text = README.read_text(encoding="utf-8")
    for name in README_TABLES:
        assert readme_block(name) in text, f"README table '{name}' is stale: run python -m metrics.columns"
    for column in SCAN_COLUMNS + SUMMARY_COLUMNS + EVENT_COLUMNS:
        assert f"| `{column.name}` |" in text


def test_every_float_column_has_decimals_and_descriptions_are_present():
    for column in SCAN_COLUMNS + SUMMARY_COLUMNS + EVENT_COLUMNS:
        assert column.description.strip(), column.name
        assert (column.kind is Kind.FLOAT) == (column.decimals is not None)
