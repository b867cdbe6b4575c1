"""Real findings of a background: the sphere mask and its path into the validation cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.grid import canonical_array
from segmentation.synth.acquisition import Acquisition
from segmentation.synth.backgrounds import SOURCES, Background, Finding, declared_findings, findings_mask, source
from segmentation.synth.lesions import LesionPlan
from segmentation.synth.targets import Targets
from segmentation.training.cases import acquired_case, acquired_ignore, simulate_case


def _image(size=(14, 12, 9), spacing=(0.8, 0.7, 2.5), direction=(-1, 0, 0, 0, 1, 0, 0, 0, -1)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin((40.0, -12.0, 30.0))
    image.SetDirection(direction)
    return image


def _brute_force(image: sitk.Image, finding: Finding) -> np.ndarray:
    size = image.GetSize()
    mask = np.zeros(size[::-1], bool)
    for k in range(size[2]):
        for j in range(size[1]):
            for i in range(size[0]):
                point = np.asarray(image.TransformIndexToPhysicalPoint((i, j, k)))
                mask[k, j, i] = np.linalg.norm(point - finding.centre_lps_mm) <= finding.radius_mm
    return mask


@pytest.mark.parametrize(
    "direction",
    [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, 1, 0, 0, 0, -1), (0, 0, 1, 1, 0, 0, 0, 1, 0)],
    ids=["identity", "flipped", "permuted"],
)
def test_the_sphere_matches_the_voxel_centres(direction):
    image = _image(direction=direction)
    centre = image.TransformContinuousIndexToPhysicalPoint((6.3, 5.0, 4.2))
    finding = Finding("test", tuple(centre), 4.0)
    mask = findings_mask(image, (finding,))
    assert mask.shape == image.GetSize()[::-1]
    assert 0 < mask.sum() < mask.size
    assert np.array_equal(mask, _brute_force(image, finding))


def test_a_sphere_partly_or_wholly_outside_the_image():
    image = _image()
    edge = Finding("edge", tuple(image.TransformIndexToPhysicalPoint((0, 0, 0))), 3.0)
    far = Finding("far", (1000.0, 1000.0, 1000.0), 5.0)
    assert np.array_equal(findings_mask(image, (edge,)), _brute_force(image, edge))
    assert not findings_mask(image, (far,)).any()
    assert np.array_equal(findings_mask(image, (edge, far)), findings_mask(image, (edge,)))


def test_the_held_out_chest_declares_its_mass():
    assert [s.name for s in SOURCES if s.findings] == ["popi", "dlwpt"]
    (mass,) = source("dlwpt").findings
    assert mass.centre_lps_mm[0] < 0  # patient right in LPS
    assert 10.0 <= mass.radius_mm <= 30.0
    assert declared_findings(source("dlwpt"), Targets.OPACITY) == (mass,)  # declared under every rule


def test_the_training_chest_nodule_is_declared_for_the_visible_rule_only():
    # Declaring it under the opacity rule would change the cache lunglesion-seg-v1/-v2 were trained on.
    (nodule,) = source("popi").findings
    assert nodule.centre_lps_mm[0] < 0  # right lung
    assert 15.0 <= nodule.radius_mm <= 30.0
    assert declared_findings(source("popi"), Targets.OPACITY) == ()
    assert declared_findings(source("popi"), Targets.VISIBLE) == (nodule,)


def _background(image: sitk.Image, finding: Finding) -> Background:
    hu, canon = canonical_array(image, dtype=np.float32)
    hu[:] = -1000.0
    lungs = np.zeros(hu.shape, np.uint8)
    lungs[1:-1, 2:-2, 2:6] = 1
    lungs[1:-1, 2:-2, 7:-2] = 2
    hu[lungs > 0] = -850.0
    findings = np.ascontiguousarray(canon.forward(findings_mask(image, (finding,))))
    return Background("test", hu, canon.spacing_zyx, lungs, findings.copy(), image, canon, findings)


@pytest.mark.parametrize("thickness_mm", [2.5, 5.0])
def test_the_validation_ignore_mask_covers_the_finding(thickness_mm):
    image = _image(size=(14, 12, 12), spacing=(1.0, 1.0, 2.5))
    finding = Finding("test", tuple(image.TransformContinuousIndexToPhysicalPoint((4.0, 6.0, 6.0))), 3.5)
    background = _background(image, finding)
    acquisition = Acquisition(thickness_mm=thickness_mm, smooth_mm=0.0, sharpen=0.0, noise_hu=0.0, noise_mm=0.5)
    series = simulate_case(background, LesionPlan(), acquisition)
    ct, _, _ = acquired_case(series, background)
    ignore = acquired_ignore(series, background)
    assert ignore is not None
    assert ignore.GetSize() == ct.GetSize() and ignore.GetSpacing() == ct.GetSpacing()
    assert ignore.GetOrigin() == ct.GetOrigin() and ignore.GetDirection() == ct.GetDirection()
    mask = sitk.GetArrayFromImage(ignore) > 0
    if thickness_mm == 2.5:  # native slices: exactly the sphere
        assert np.array_equal(mask, findings_mask(image, (finding,)))
    else:  # every thick slice that reaches into the sphere is covered where the sphere is
        native = findings_mask(ct, (finding,))
        assert (mask | ~native).all()
        assert mask.sum() >= native.sum()


def test_no_findings_no_ignore_mask():
    image = _image(size=(14, 12, 12), spacing=(1.0, 1.0, 2.5))
    background = _background(image, Finding("none", (1000.0, 1000.0, 1000.0), 1.0))
    background.findings = None
    acquisition = Acquisition(thickness_mm=2.5, smooth_mm=0.0, sharpen=0.0, noise_hu=0.0, noise_mm=0.5)
    assert acquired_ignore(simulate_case(background, LesionPlan(), acquisition), background) is None
