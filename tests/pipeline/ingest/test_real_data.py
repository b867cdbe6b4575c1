"""Real DICOM from ../shared/data: full chest series, vendor quirks, transfer syntaxes, edge cases.

Geometry and values are cross-checked against a second reader (SimpleITK/GDCM). Skipped with
a reason where ../shared is absent.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from pipeline.errors import ErrorCode, IngestError, WarningCode
from pipeline.ingest import index_inputs, load_scan

pytestmark = pytest.mark.shared_data

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
LOADABLE = {"SELECTED", "LOCALIZER", "DERIVED_IMAGE", "NOT_AXIAL"}
"""Verdicts of CT images whose pixels must decode (the rule that rejects them is not about pixels)."""


def hu_like_ours(values: np.ndarray) -> np.ndarray:
    """The default HU mapping applied to another reader's HU values (out-of-field to -1000, clip 3071)."""
    mapped = values.astype(np.int64)
    mapped[mapped < -1100] = -1000
    return np.minimum(mapped, 3071)


def same_as_gdcm(image: sitk.Image, reference: sitk.Image) -> None:
    """Our volume equals GDCM's voxel for voxel, compared in physical space (axis orders may differ)."""
    on_our_grid = sitk.Resample(reference, image, sitk.Transform(), sitk.sitkNearestNeighbor, -4242, sitk.sitkInt32)
    theirs = hu_like_ours(sitk.GetArrayFromImage(on_our_grid))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), theirs)


def verdict(path: Path, settings) -> tuple[str, object]:
    """Index one file alone: its skip code, or its candidate's code (``SELECTED`` when chosen)."""
    if path.name.upper() == "DICOMDIR":  # given as input, a DICOMDIR stands for its whole folder
        (issue,) = [i for i in index_inputs([path.parent], settings=settings).skipped if i.path == str(path)]
        return issue.code.value, None
    result = index_inputs([path], settings=settings)
    if result.skipped:
        (issue,) = result.skipped
        return issue.code.value, None
    (candidate,) = result.candidates
    return (candidate.error_code.value if candidate.error_code else "SELECTED"), candidate


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


# --- the two full chest series -----------------------------------------------------------------------

FULL_SERIES = {
    "dlwpt-chest-ct-dicom": {
        "size": (512, 512, 99),
        "spacing": (0.564453125, 0.564453125, 3.0),
        "origin_z": -288.0,
        "range": (-1024, 3071),
        "kernel": "B70f",
    },
    "popi-4dct-phase00-itkelastix": {
        "size": (512, 512, 141),
        "spacing": (0.9765625, 0.9765625, 2.0),
        "origin_z": -164.5,  # stored apex-down with SpacingBetweenSlices -2.0
        "range": (-1024, 2976),
        "kernel": "C",
    },
}


@pytest.fixture(scope="session")
def full_series(real_data, settings):
    """Each full series indexed, loaded once, and read once by SimpleITK's series reader."""
    loaded = {}
    for name in FULL_SERIES:
        folder = real_data(name)
        result = index_inputs([folder], settings=settings)
        (candidate,) = result.selected
        scan = load_scan(candidate, settings=settings)
        series_folder = Path(candidate.source_path)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series_folder), candidate.series_uid))
        loaded[name] = (result, candidate, scan, reader.Execute())
    return loaded


@pytest.mark.parametrize("name", sorted(FULL_SERIES))
def test_full_series_selected_with_right_geometry(full_series, name):
    expected = FULL_SERIES[name]
    result, candidate, scan, reference = full_series[name]
    assert len(result.candidates) == 1 and candidate.selected and candidate.error_code is None
    assert [issue.code for issue in result.skipped] == [ErrorCode.NOT_DICOM] * len(result.skipped)
    assert candidate.kernel == expected["kernel"] and candidate.all_warnings == ()
    image = scan.image
    assert image.GetSize() == expected["size"] == candidate.size
    assert image.GetSpacing() == pytest.approx(expected["spacing"], abs=1e-9)
    assert image.GetDirection() == pytest.approx(IDENTITY, abs=1e-12)
    assert image.GetOrigin()[2] == pytest.approx(expected["origin_z"], abs=1e-9)
    values = sitk.GetArrayViewFromImage(image)
    assert (int(values.min()), int(values.max())) == expected["range"]
    assert image.GetPixelID() == sitk.sitkInt16
    # Lungs are there: a large share of the voxels is air-like inside the body.
    assert 0.05 < float(np.mean((values > -950) & (values < -500))) < 0.5


@pytest.mark.parametrize("name", sorted(FULL_SERIES))
def test_full_series_match_simpleitk_series_reader(full_series, name):
    _, _, scan, reference = full_series[name]
    image = scan.image
    assert reference.GetSize() == image.GetSize()
    assert reference.GetSpacing() == pytest.approx(image.GetSpacing(), abs=1e-6)
    assert reference.GetOrigin() == pytest.approx(image.GetOrigin(), abs=1e-4)
    assert reference.GetDirection() == pytest.approx(image.GetDirection(), abs=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), hu_like_ours(sitk.GetArrayFromImage(reference)))


def test_cli_index_selects_both_full_series(real_data, tmp_path):
    folders = [real_data(name) for name in sorted(FULL_SERIES)]
    out = tmp_path / "index.csv"
    script = Path(sys.executable).parent / "lunglesion"
    completed = subprocess.run(
        [str(script), "index", *map(str, folders), "--csv", str(out)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    import csv

    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    got = sorted((r["selected"], r["size_x"], r["size_y"], r["size_z"], r["spacing_x"], r["spacing_z"]) for r in rows)
    assert got == [("true", "512", "512", "141", "0.976562", "2"), ("true", "512", "512", "99", "0.564453", "3")]


# --- every file of the small sets: decodes to sane HU, or is rejected with the right code --------------

ORTHANC = {
    "2020-08-12-Christopher.dcm": "LOCALIZER",
    "2020-09-11-Christopher-ELSCINT1-Raw.dcm": "SELECTED",
    "2020-09-12-ELSCINT1-PMSCT_RLE1.dcm": "PRIVATE_PIXEL_DATA",
    "2024-05-30-GuillemVela.dcm": "NOT_AXIAL",
    "COPYING": "NOT_DICOM",
    "Comunix/Ct/IM-0001-0001.dcm": "SELECTED",
    "Comunix/Ct/IM-0001-0002.dcm": "SELECTED",
    "HierarchicalAnonymization/RTH/CT01.dcm": "DERIVED_IMAGE",
    "HierarchicalAnonymization/RTH/RT.dcm": "NON_IMAGE_OBJECT",
    "Issue141.dcm": "SELECTED",
    "PatientWith2studies/TEST_1_study_1234.dcm": "DERIVED_IMAGE",
    "PatientWith2studies/TEST_1_study_2345.dcm": "DERIVED_IMAGE",
    "Phenix/IM-0001-0001.dcm": "LOCALIZER",
    "SOURCE.txt": "NOT_DICOM",
    "SignedCT.dcm": "SELECTED",
    "TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm": "LOCALIZER",
    "TransferSyntaxes/1.2.840.10008.1.2.4.70.dcm": "LOCALIZER",
    "TransferSyntaxes/1.2.840.10008.1.2.4.81.dcm": "DERIVED_IMAGE",
    "TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm": "DERIVED_IMAGE",
    "VERIFY.txt": "NOT_DICOM",
}
PYDICOM = {
    "SOURCE.txt": "NOT_DICOM",
    "VERIFY.txt": "NOT_DICOM",
    "pydicom-3.0.2/693_J2KI.dcm": "DERIVED_IMAGE",
    "pydicom-3.0.2/CT_small.dcm": "SELECTED",
    "pydicom-3.0.2/J2K_pixelrep_mismatch.dcm": "SELECTED",
    "pydicom-3.0.2/LICENSE": "NOT_DICOM",
    "pydicom-3.0.2/README.txt": "NOT_DICOM",
    "pydicom-3.0.2/dicomdirtests/77654033/CR1/6154": "NOT_CT",
    "pydicom-3.0.2/dicomdirtests/77654033/CR2/6247": "NOT_CT",
    "pydicom-3.0.2/dicomdirtests/77654033/CR3/6278": "NOT_CT",
    "pydicom-3.0.2/dicomdirtests/77654033/CT2/17106": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/77654033/CT2/17136": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/77654033/CT2/17166": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/77654033/CT2/17196": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/98892001/CT2N/6293": "LOCALIZER",
    "pydicom-3.0.2/dicomdirtests/98892001/CT2N/6924": "LOCALIZER",
    "pydicom-3.0.2/dicomdirtests/98892001/CT5N/2062": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/98892001/CT5N/2392": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/98892001/CT5N/2693": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/98892001/CT5N/3023": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/98892001/CT5N/3353": "SELECTED",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR-bigEnd": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR-empty.dcm": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR-implicit": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR-nooffset": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR-nopatient": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/DICOMDIR-reordered": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/README.txt": "NOT_DICOM",
    "pydicom-3.0.2/dicomdirtests/TINY_ALPHA/DICOMDIR": "NON_IMAGE_OBJECT",
    "pydicom-3.0.2/dicomdirtests/TINY_ALPHA/README": "NOT_DICOM",
    "pydicom-data-1.0.0/693_J2KR.dcm": "SELECTED",
    "pydicom-data-1.0.0/693_UNCI.dcm": "DERIVED_IMAGE",
    "pydicom-data-1.0.0/693_UNCR.dcm": "SELECTED",
    "pydicom-data-1.0.0/LICENSE": "NOT_DICOM",
    "pydicom-data-1.0.0/bad_sequence.dcm": "SELECTED",
    "pydicom-data-1.0.0/eCT_Supplemental.dcm": "DERIVED_IMAGE",
    "pydicom-data-1.0.0/explicit_VR-UN.dcm": "SELECTED",
}
PYDICOM_PREFIXES = {
    "pydicom-3.0.2/dicomdirtests/98892003/": "NOT_CT",  # MR
    "pydicom-3.0.2/dicomdirtests/TINY_ALPHA/PT000000/": "NO_PIXEL_DATA",  # CT headers stripped of pixels
}
TOTALSEGMENTATOR = {
    "LICENSE": "NOT_DICOM",
    "SOURCE.txt": "NOT_DICOM",
    "VERIFY.txt": "NOT_DICOM",
    "map_to_binary.py": "NOT_DICOM",
    "example_ct.nii.gz": "SELECTED",
    "example_ct_sm.nii.gz": "SELECTED",
    "example_seg.nii.gz": "NOT_CT",
    "example_seg_dicom.nii.gz": "NOT_CT",
    "example_seg_fast.nii.gz": "NOT_CT",
}
TOTALSEGMENTATOR_PREFIXES = {"example_ct_dicom/": "SELECTED"}


def expected_verdict(rel: str, table: dict[str, str], prefixes: dict[str, str]) -> str:
    if rel in table:
        return table[rel]
    for prefix, code in prefixes.items():
        if rel.startswith(prefix):
            return code
    raise AssertionError(f"no expectation for {rel}")


@pytest.mark.parametrize(
    ("name", "table", "prefixes"),
    [
        ("orthanc-tests-ct", ORTHANC, {}),
        ("pydicom-ct-testfiles", PYDICOM, PYDICOM_PREFIXES),
        ("totalsegmentator-tests", TOTALSEGMENTATOR, TOTALSEGMENTATOR_PREFIXES),
    ],
)
def test_every_file_decodes_or_is_rejected_with_its_code(real_data, permissive, name, table, prefixes):
    root = real_data(name)
    checked_loads = 0
    for path in files_of(root):
        rel = path.relative_to(root).as_posix()
        got, candidate = verdict(path, permissive)
        assert got == expected_verdict(rel, table, prefixes), rel
        if candidate is None:
            continue
        if got in LOADABLE:
            scan = load_scan(candidate, settings=permissive)
            values = sitk.GetArrayViewFromImage(scan.image)
            assert scan.image.GetPixelID() == sitk.sitkInt16
            assert int(values.min()) >= -1100 and int(values.max()) <= 3071, rel
            same_as_gdcm(scan.image, sitk.ReadImage(str(path)))
            checked_loads += 1
        elif got in ("PRIVATE_PIXEL_DATA", "NO_PIXEL_DATA", "UNSUPPORTED_TRANSFER_SYNTAX"):
            with pytest.raises(IngestError) as raised:  # a clean refusal with the same code
                load_scan(candidate, settings=permissive)
            assert raised.value.code.value == got, rel
    assert checked_loads >= 5


def test_orthanc_patient_with_two_studies(real_data, settings):
    result = index_inputs([real_data("orthanc-tests-ct") / "PatientWith2studies"], settings=settings)
    assert {c.patient_id for c in result.candidates} == {"TEST_1"}
    assert len({c.study_uid for c in result.candidates}) == 2
    assert [c.error_code for c in result.candidates] == [ErrorCode.DERIVED_IMAGE] * 2  # sagittal MPR
    assert [issue.code for issue in result.study_issues] == [ErrorCode.NO_CT_SERIES] * 2


def test_pydicom_dicomdir_tree(real_data, settings):
    root = real_data("pydicom-ct-testfiles") / "pydicom-3.0.2" / "dicomdirtests"
    result = index_inputs([root], settings=settings)
    dicomdirs = [issue for issue in result.skipped if "DICOMDIR" in Path(issue.path).name]
    assert len(dicomdirs) == 8 and {issue.code for issue in dicomdirs} == {ErrorCode.NON_IMAGE_OBJECT}
    by_description = {}
    for candidate in result.candidates:
        by_description.setdefault(candidate.series_description, []).append(candidate)
    scouts = by_description["Scout"]
    assert [c.series_part for c in scouts] == ["orientation 1 of 2", "orientation 2 of 2"]
    assert {c.error_code for c in scouts} == {ErrorCode.LOCALIZER}
    (brain,) = by_description["Routine Brain"]
    assert brain.error_code is ErrorCode.SLICE_SPACING_INCONSISTENT  # 1.25 mm steps, then a 202.5 mm jump
    (gated,) = by_description["SmartScore - Gated 0.5 sec"]
    assert gated.error_code is ErrorCode.TOO_FEW_SLICES
    assert result.selected == ()


def test_gantry_tilt_tag_file_decodes_with_its_oblique_orientation(real_data, permissive):
    path = real_data("pydicom-ct-testfiles") / "pydicom-3.0.2" / "J2K_pixelrep_mismatch.dcm"
    _, candidate = verdict(path, permissive)
    image = load_scan(candidate, settings=permissive).image
    # Columns along (0, 0.9272, -0.3746): the image plane is tilted by 22 degrees (GantryDetectorTilt -22).
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], (1.0, 0.0, 0.0), atol=1e-4)
    np.testing.assert_allclose(direction[:, 1], (0.0, 0.9272, -0.3746), atol=1e-4)
    assert math.degrees(math.acos(direction[2, 2])) == pytest.approx(22.0, abs=0.01)


def test_totalsegmentator_series_without_uids(real_data, settings, permissive):
    folder = real_data("totalsegmentator-tests") / "example_ct_dicom"
    (candidate,) = index_inputs([folder], settings=settings).candidates
    assert candidate.series_uid == "" and candidate.n_files == 20
    assert candidate.error_code is ErrorCode.TOO_FEW_SLICES  # 20 x 2 mm of pelvis
    assert candidate.transfer_syntax_uids == ("1.2.840.10008.1.2.4.90",)
    (candidate,) = index_inputs([folder], settings=permissive).candidates
    scan = load_scan(candidate, settings=permissive)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    reference = reader.Execute()
    assert scan.image.GetSize() == reference.GetSize() == (512, 512, 20)
    assert scan.image.GetSpacing() == pytest.approx(reference.GetSpacing(), abs=1e-6)
    assert scan.image.GetOrigin() == pytest.approx(reference.GetOrigin(), abs=1e-4)
    same_as_gdcm(scan.image, reference)


# --- geometry edge cases -------------------------------------------------------------------------------

EDGECASES = {
    "gantrytilting/001": ErrorCode.GANTRY_TILT,
    "notavolume/001": ErrorCode.DUPLICATE_POSITIONS,
    "sliceincrement/001": ErrorCode.SLICE_SPACING_INCONSISTENT,
    "sliceincrement/002": ErrorCode.GANTRY_TILT,  # tilted and missing a slice: tilt is checked first
}


def edge_candidate(root: Path, case: str, settings):
    (candidate,) = index_inputs([root / case], settings=settings).candidates
    return candidate


def test_dicom2nifti_edge_cases_rejected_when_repairs_are_off(real_data, settings, overrides):
    strict = overrides(settings, geometry={"on_gantry_tilt": "reject", "on_irregular_spacing": "reject"})
    root = real_data("dicom2nifti-ct-edgecases")
    for case, code in EDGECASES.items():
        assert edge_candidate(root, case, strict).error_code is code, case


def test_dicom2nifti_edge_cases_with_default_repairs(real_data, settings):
    root = real_data("dicom2nifti-ct-edgecases")
    tilted = edge_candidate(root, "gantrytilting/001", settings)
    assert tilted.tilt_deg == pytest.approx(math.degrees(math.atan2(0.2419218955997, 0.970295726276)), abs=1e-6)
    assert [w.code for w in tilted.all_warnings] == [WarningCode.GANTRY_TILT_CORRECTED]
    gap = edge_candidate(root, "sliceincrement/001", settings)
    assert gap.size == (512, 512, 5) and gap.spacing[2] == pytest.approx(5.0, abs=1e-6)
    assert [w.code for w in gap.all_warnings] == [WarningCode.SPACING_RESAMPLED]
    both = edge_candidate(root, "sliceincrement/002", settings)
    assert both.tilt_deg == pytest.approx(15.5, abs=1e-6) and both.size[2] == 5
    # All of them are only 4 images: far too few for a chest.
    for case in ("gantrytilting/001", "sliceincrement/001", "sliceincrement/002"):
        assert edge_candidate(root, case, settings).error_code is ErrorCode.TOO_FEW_SLICES
    assert edge_candidate(root, "notavolume/001", settings).error_code is ErrorCode.DUPLICATE_POSITIONS


def test_dicom2nifti_repairs_load(real_data, permissive):
    root = real_data("dicom2nifti-ct-edgecases")
    gap = edge_candidate(root, "sliceincrement/001", permissive)
    volume = sitk.GetArrayFromImage(load_scan(gap, settings=permissive).image)
    files = sorted((root / "sliceincrement/001").glob("*.dcm"))
    raw = [pydicom.dcmread(f) for f in files]
    raw.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    hu = [ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept) for ds in raw]
    for k, source in ((0, 0), (1, 1), (2, 2), (4, 3)):
        np.testing.assert_array_equal(volume[k], hu_like_ours(hu[source]))
    # The missing slice: halfway between its neighbours (positions are rounded: weight 0.5 +- 1e-6).
    weight = gap.plan.interpolation[3].weight
    assert weight == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_array_equal(volume[3], np.rint((1 - weight) * hu[2] + weight * hu[3]))

    tilted = edge_candidate(root, "gantrytilting/001", permissive)
    image = load_scan(tilted, settings=permissive).image
    assert image.GetSize() == tilted.size == (512, 496, 4)
    assert image.GetDirection() == pytest.approx(IDENTITY, abs=1e-9)
    assert image.GetSpacing() == pytest.approx((0.41796875, 0.41796875, 5.0), abs=1e-9)


def lidc_slab(real_data, case: str) -> Path:
    return next((real_data("lidc-3slabs-nodule-outlines") / "dicom" / case).glob("*/*"))


def gdcm_series(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute()).astype(np.int64)


def test_lidc_padding_value_written_unsigned(real_data, permissive):
    # LIDC-IDRI-0001: PixelPaddingValue US 63536 in signed pixels, i.e. -2000; outside the field
    # of view the pixels hold -1024 (-2048 HU), which the out-of-field rule maps to air.
    folder = lidc_slab(real_data, "LIDC-IDRI-0001")
    first = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    assert first["PixelPaddingValue"].value == 63536 and first.PixelRepresentation == 1
    (candidate,) = index_inputs([folder], settings=permissive).candidates
    assert candidate.plan.pixel_format.padding_value == -2000
    scan = load_scan(candidate, settings=permissive)
    values = sitk.GetArrayFromImage(scan.image)
    reference = gdcm_series(folder)
    assert int(reference.min()) == -2048 and int(values.min()) >= -1100
    np.testing.assert_array_equal(values, hu_like_ours(reference))


def test_lidc_padding_pixels_become_air(real_data, permissive, overrides):
    # LIDC-IDRI-0002 really writes its padding value (-2000) into the pixels. With the out-of-field
    # rule switched off, only PixelPaddingValue can turn them into air.
    folder = lidc_slab(real_data, "LIDC-IDRI-0002")
    files = sorted(folder.glob("*.dcm"))
    padded = sum(int(np.count_nonzero(pydicom.dcmread(f).pixel_array == -2000)) for f in files)
    assert padded > 0
    no_fov = overrides(permissive, hu={"out_of_fov_below_hu": -32768})
    (candidate,) = index_inputs([folder], settings=no_fov).candidates
    scan = load_scan(candidate, settings=no_fov)
    assert int(scan.extra["padding_voxels"]) == padded
    reference = gdcm_series(folder)
    assert int(reference.min()) == -3024  # GDCM applies no padding: -2000 - 1024
    reference[reference == -3024] = -1000
    np.testing.assert_array_equal(sitk.GetArrayFromImage(scan.image), reference)


def test_dicomdir_given_as_input_indexes_its_folder(real_data, settings):
    root = real_data("pydicom-ct-testfiles") / "pydicom-3.0.2" / "dicomdirtests"
    via_dicomdir = index_inputs([root / "DICOMDIR"], settings=settings)
    via_folder = index_inputs([root], settings=settings)
    assert via_dicomdir.candidates == via_folder.candidates and len(via_folder.candidates) > 5
