"""Target rules: which ground-glass labels count as unseen, and where they are left out."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.grid import canonical_array
from segmentation.synth.acquisition import Acquisition
from segmentation.synth.backgrounds import Background
from segmentation.synth.lesions import IGNORE_LABEL, FocalLesion, LesionPlan, Pattern, render
from segmentation.synth.phantom import make_phantom
from segmentation.synth.targets import UNSEEN_RISE_HU, Targets, unseen_ggo
from segmentation.training.cases import acquired_ignore, simulate_case, working_sample
from segmentation.training.run import DEFAULT_PREPROCESSING

SPACING = (2.0, 1.0, 1.0)


def test_the_rules_are_ordered():
    assert Targets.VISIBLE.includes(Targets.OPACITY) and Targets.VISIBLE.includes(Targets.VISIBLE)
    assert Targets.OPACITY.includes(Targets.OPACITY) and not Targets.OPACITY.includes(Targets.VISIBLE)


def test_unseen_is_where_the_neighbourhood_is_not_raised():
    shape = (10, 40, 40)
    region = np.zeros(shape, bool)
    region[:, 5:35, 5:35] = True
    rise = np.zeros(shape, np.float32)
    rise[:, 5:35, 5:20] = 200.0  # visibly raised half
    rise[:, 5:35, 20:35] = 10.0  # a faint opacity over already dense lung
    rise[:, 18:20, 10:12] = 0.0  # a vessel inside the raised half keeps its HU
    unseen = unseen_ggo(rise, region, region, SPACING)
    assert not unseen[:, 8:32, 8:17].any()  # raised parenchyma and the vessel crossing it stay labelled
    assert unseen[:, 8:32, 24:32].all()
    # Averaged over the lesion only: the raised half's outer edge is not diluted by normal lung.
    assert not unseen[:, 5:35, 5].any()
    # Only labelled GGO can be unseen.
    label = region.copy()
    label[:, :, 28:] = False
    assert not unseen_ggo(rise, region, label, SPACING)[:, :, 28:].any()


def test_the_threshold_is_a_mean_rise_in_hu():
    shape = (6, 20, 20)
    region = np.ones(shape, bool)
    below = unseen_ggo(np.full(shape, UNSEEN_RISE_HU - 1, np.float32), region, region, SPACING)
    above = unseen_ggo(np.full(shape, UNSEEN_RISE_HU + 1, np.float32), region, region, SPACING)
    assert below.all() and not above.any()


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(40, 128, 160), spacing_zyx=(2.5, 2.0, 2.0))


def _ggo_plan(phantom, ggo_hu: float) -> LesionPlan:
    zz, yy, xx = np.nonzero(phantom.lungs == 1)
    lesion = FocalLesion(
        centre_zyx=(float(np.median(zz)), float(np.median(yy)), float(np.median(xx))),
        radius_mm=18.0,
        axes=(1.0, 1.0, 1.0),
        pattern=Pattern.GGO,
        irregularity=0.2,
        margin_mm=1.5,
    )
    return LesionPlan(focal=(lesion,), seed=7, ggo_hu=ggo_hu, ggo_texture_hu=0.0)


def test_render_marks_ggo_that_raises_nothing(phantom):
    lung_hu = float(np.median(phantom.hu[phantom.lungs > 0]))
    # A GGO whose target lies below the lung's own attenuation changes nothing: all of it is unseen.
    invisible = render(
        phantom.hu, phantom.lungs, phantom.spacing_zyx, _ggo_plan(phantom, lung_hu - 200), unseen_rise_hu=50
    )
    ggo = invisible.lesions == 1
    assert ggo.sum() > 100
    assert np.array_equal(invisible.unseen, ggo)
    # A dense one is seen everywhere (vessels inside it included).
    dense = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, _ggo_plan(phantom, -450.0), unseen_rise_hu=50)
    assert (dense.lesions == 1).sum() > 100
    assert dense.unseen.sum() < 0.02 * (dense.lesions == 1).sum()


def test_asking_for_unseen_voxels_changes_neither_image_nor_labels(phantom):
    plan = _ggo_plan(phantom, -700.0)
    plain = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, plan)
    marked = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, plan, unseen_rise_hu=50)
    assert plain.unseen is None
    assert np.array_equal(plain.hu, marked.hu) and np.array_equal(plain.lesions, marked.lesions)


def _background(phantom) -> Background:
    image = sitk.GetImageFromArray(phantom.hu.astype(np.int16))
    image.SetSpacing(tuple(float(s) for s in phantom.spacing_zyx[::-1]))
    _, canon = canonical_array(image, dtype=np.float32)
    nodules = np.zeros(phantom.hu.shape, bool)
    return Background(
        "phantom", phantom.hu.astype(np.float32), phantom.spacing_zyx, phantom.lungs, nodules, image, canon
    )


@pytest.mark.parametrize("targets", list(Targets))
def test_unseen_ggo_is_ignored_in_training_and_scoring_under_the_visible_rule(phantom, targets):
    background = _background(phantom)
    lung_hu = float(np.median(phantom.hu[phantom.lungs > 0]))
    acquisition = Acquisition(thickness_mm=2.5, smooth_mm=0.0, sharpen=0.0, noise_hu=0.0, noise_mm=0.5)
    series = simulate_case(background, _ggo_plan(phantom, lung_hu - 200), acquisition, targets=targets)
    ggo = series.native_lesions == 1
    assert ggo.sum() > 100
    _, _, lesions, _ = working_sample(series, DEFAULT_PREPROCESSING)
    ignore = acquired_ignore(series, background)
    if targets is Targets.VISIBLE:
        assert series.native_ignore[ggo].all()
        assert (lesions == IGNORE_LABEL).any() and not (lesions == 1).any()
        assert ignore is not None and np.array_equal(sitk.GetArrayFromImage(ignore) > 0, ggo)
    else:
        assert series.native_unseen is None and not series.native_ignore.any()
        assert (lesions == 1).any() and not (lesions == IGNORE_LABEL).any()
        assert ignore is None
