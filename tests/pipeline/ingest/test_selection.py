"""Series selection per study: every candidate leaves with a verdict, a reason and a code."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from pipeline.errors import ErrorCode
from pipeline.ingest import index_inputs
from pipeline.ingest.selection import apply_selection
from pipeline.synthetic import (
    Geometry,
    Patient,
    Series,
    Study,
    write_ct_series,
    write_dose_report,
    write_localizer,
    write_reformat,
    write_secondary_capture,
)

PATIENT = Patient(patient_id="SEL-1")
STUDY_A = Study(study_date=date(2020, 3, 15), study_id="A")
STUDY_B = Study(study_date=date(2020, 4, 20), study_id="B")
STUDY_C = Study(study_date=date(2020, 5, 1), study_id="C")


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, phantom_hu):
    """One patient, three studies; study A mixes usable series with everything that is not."""
    root = tmp_path_factory.mktemp("mixed")
    a = {"patient": PATIENT, "study": STUDY_A}
    write_ct_series(root / "a2", phantom_hu, series=Series(2, "CHEST 1.0 B30f", "B30f", slice_thickness=1.0), **a)
    write_ct_series(root / "a3", phantom_hu, series=Series(3, "LUNG 1.0 B70f", "B70f", slice_thickness=1.0), **a)
    write_ct_series(root / "a4", phantom_hu, series=Series(4, "CHEST 5.0 B30f", "B30f"), **a)
    write_ct_series(root / "a5", phantom_hu, series=Series(5, "T1 axial", "", modality="MR"), **a)
    write_localizer(root / "a1", **a)
    write_reformat(root / "a501", phantom_hu, geometry=Geometry(), **a)
    write_secondary_capture(root / "a999" / "sc.dcm", np.full((32, 48), 128, dtype=np.uint8), **a)
    write_dose_report(root / "a998" / "sr.dcm", **a)
    write_ct_series(root / "b2", phantom_hu, patient=PATIENT, study=STUDY_B, series=Series(2, "CHEST 3.0", "B30f"))
    write_localizer(root / "c1", patient=PATIENT, study=STUDY_C)
    write_dose_report(root / "c998" / "sr.dcm", patient=PATIENT, study=STUDY_C)
    return root


def by_description(result):
    return {(c.study_datetime.date(), c.series_description): c for c in result.candidates}


def test_every_series_gets_a_verdict(mixed_folder, settings):
    result = index_inputs([mixed_folder], settings=settings)
    found = by_description(result)
    a, b = date(2020, 3, 15), date(2020, 4, 20)
    winner = found[(a, "CHEST 1.0 B30f")]
    assert winner.selected and winner.error_code is None
    assert "best of 3 usable series" in winner.reason

    sharp = found[(a, "LUNG 1.0 B70f")]
    assert sharp.error_code is ErrorCode.NOT_SELECTED
    assert f"series 2 'CHEST 1.0 B30f' ({winner.scan_id}) preferred" in sharp.reason
    assert "soft kernel preferred" in sharp.reason

    thick = found[(a, "CHEST 5.0 B30f")]
    assert thick.error_code is ErrorCode.NOT_SELECTED and "thinner slices (1 mm vs 5 mm)" in thick.reason

    assert found[(a, "T1 axial")].error_code is ErrorCode.NOT_CT
    assert found[(a, "Topogram 0.6 T20s")].error_code is ErrorCode.LOCALIZER
    assert found[(a, "COR MPR 3.0")].error_code is ErrorCode.DERIVED_IMAGE
    assert found[(a, "Dose Report")].error_code is ErrorCode.SECONDARY_CAPTURE
    assert found[(a, "Radiation Dose Information")].error_code is ErrorCode.NON_IMAGE_OBJECT
    assert found[(b, "CHEST 3.0")].selected
    for candidate in result.candidates:
        assert candidate.reason.startswith("selected:" if candidate.selected else "not selected:")
        assert (candidate.error_code is None) == candidate.selected

    (issue,) = result.study_issues
    assert issue.code is ErrorCode.NO_CT_SERIES and issue.patient_id == "SEL-1"
    assert "LOCALIZER x1" in issue.message and "NON_IMAGE_OBJECT x1" in issue.message
    assert len(result.selected) == 2
    studies = result.studies()
    assert [len(members) for members in studies.values()] == [8, 1, 2]
    assert {key[0] for key in studies} == {"SEL-1"}


def test_kernel_preference_sharp(mixed_folder, settings, overrides):
    sharp = overrides(settings, selection={"kernel_preference": "sharp"})
    found = by_description(index_inputs([mixed_folder], settings=sharp))
    assert found[(date(2020, 3, 15), "LUNG 1.0 B70f")].selected
    assert "sharp kernel preferred" in found[(date(2020, 3, 15), "CHEST 1.0 B30f")].reason


def test_all_usable_series_per_study(mixed_folder, settings, overrides):
    every = overrides(settings, selection={"series_per_study": "all"})
    result = index_inputs([mixed_folder], settings=every)
    assert sorted(c.series_description for c in result.selected) == [
        "CHEST 1.0 B30f",
        "CHEST 3.0",
        "CHEST 5.0 B30f",
        "LUNG 1.0 B70f",
    ]


@pytest.mark.parametrize(("kernel", "preferred"), [("soft", "CHEST 1.0 B30f"), ("sharp", "LUNG 1.0 B70f")])
def test_all_series_per_study_still_marks_the_preferred_one(mixed_folder, settings, overrides, kernel, preferred):
    every = overrides(settings, selection={"series_per_study": "all", "kernel_preference": kernel})
    found = by_description(index_inputs([mixed_folder], settings=every))
    study = [c for (day, _), c in found.items() if day == date(2020, 3, 15) and c.selected]
    assert len(study) >= 2  # both kernels are kept ...
    assert [c.series_description for c in study if c.preferred] == [preferred]  # ... one is preferred


def test_index_is_deterministic(mixed_folder, settings):
    first = index_inputs([mixed_folder], settings=settings)
    second = index_inputs([mixed_folder], settings=settings)
    assert first.candidates == second.candidates
    assert first.skipped == second.skipped and first.study_issues == second.study_issues


def test_description_rules(tmp_path, phantom_hu, settings):
    write_ct_series(tmp_path / "1", phantom_hu, series=Series(1, "SCOUT AP", "B30f"))
    write_ct_series(tmp_path / "2", phantom_hu, series=Series(2, "Patient Protocol", "B30f"))
    write_ct_series(tmp_path / "3", phantom_hu, series=Series(3, "Lung MIP 10mm", "B30f"))
    write_ct_series(tmp_path / "4", phantom_hu, series=Series(4, "LOW DOSE CHEST 1.0", "B30f"))
    found = {c.series_number: c for c in index_inputs([tmp_path], settings=settings).candidates}
    assert found[1].error_code is ErrorCode.LOCALIZER and "matches 'scout'" in found[1].reason
    assert found[2].error_code is ErrorCode.SECONDARY_CAPTURE
    assert found[3].error_code is ErrorCode.DERIVED_IMAGE
    assert found[4].selected  # "dose" alone does not make a dose report


def test_original_secondary_is_accepted_but_primary_preferred(tmp_path, phantom_hu, settings):
    retro = ("ORIGINAL", "SECONDARY", "AXIAL")  # GE retrospective reconstruction
    write_ct_series(tmp_path / "1", phantom_hu, series=Series(1, "RECON 2", "B30f", image_type=retro))
    write_ct_series(tmp_path / "2", phantom_hu, series=Series(2, "RECON 1", "B30f"))
    found = {c.series_number: c for c in index_inputs([tmp_path], settings=settings).candidates}
    assert found[2].selected
    assert found[1].error_code is ErrorCode.NOT_SELECTED and "PRIMARY images preferred" in found[1].reason
    only_retro = index_inputs([tmp_path / "1"], settings=settings)
    assert only_retro.candidates[0].selected


def test_larger_coverage_wins_among_equals(tmp_path, phantom_hu, settings):
    write_ct_series(tmp_path / "1", phantom_hu, series=Series(1, "PART", "B30f"))
    write_ct_series(tmp_path / "2", np.concatenate([phantom_hu, phantom_hu]), series=Series(2, "WHOLE", "B30f"))
    found = {c.series_number: c for c in index_inputs([tmp_path], settings=settings).candidates}
    assert found[2].selected
    assert "larger coverage (200 mm vs 100 mm)" in found[1].reason


def test_derived_image_type(tmp_path, phantom_hu, settings):
    write_ct_series(tmp_path, phantom_hu, series=Series(1, "AXIAL", "B30f", image_type=("DERIVED", "PRIMARY", "AXIAL")))
    (candidate,) = index_inputs([tmp_path], settings=settings).candidates
    assert candidate.error_code is ErrorCode.DERIVED_IMAGE and "not ORIGINAL" in candidate.reason


def test_reformat_writer_places_voxels_where_the_axial_ones_are(tmp_path, phantom_hu, settings, overrides):
    import SimpleITK as sitk

    from pipeline.ingest import load_scan

    geometry = Geometry(spacing=(0.7, 0.8, 5.0), origin=(-11.0, -12.0, -40.0))
    write_ct_series(tmp_path / "axial", phantom_hu, geometry=geometry)
    write_reformat(tmp_path / "coronal", phantom_hu, geometry=geometry)
    anything = overrides(
        settings,
        selection={
            "require_original": False,
            "derived_image_type_values": [],
            "reformat_description_patterns": [],
            "max_axial_deviation_deg": 90.0,
            "min_slices": 1,
            "min_z_extent_mm": 0.0,
            "series_per_study": "all",
        },
    )
    axial, coronal = (
        load_scan(c, settings=anything).image
        for c in sorted(index_inputs([tmp_path], settings=anything).candidates, key=lambda c: c.series_number)
    )
    assert coronal.GetSize() == (32, 20, 32)  # x, z, y
    on_axial_grid = sitk.Resample(coronal, axial, sitk.Transform(), sitk.sitkNearestNeighbor, -4242)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(on_axial_grid), sitk.GetArrayFromImage(axial))


def test_candidates_sharing_a_scan_id_are_refused_not_merged(tmp_path, phantom_hu, settings):
    write_ct_series(tmp_path / "series", phantom_hu)
    (original,) = index_inputs([tmp_path / "series"], settings=settings).candidates
    twin = dataclasses.replace(original, files=original.files[:10], source_path=str(tmp_path / "elsewhere"))
    decided, issues = apply_selection([original, twin], settings=settings.selection)
    assert [c.files for c in decided] == [original.files, twin.files]
    assert all(c.error_code is ErrorCode.INTERNAL_ERROR and not c.selected for c in decided)
    assert all(original.scan_id in c.reason for c in decided)
    assert [issue.code for issue in issues] == [ErrorCode.NO_CT_SERIES]
