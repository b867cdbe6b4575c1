"""The lesion synthesiser: labels agree with intensities, stay inside the lungs, and are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.synth.acquisition import Acquisition, simulate
from segmentation.synth.lesions import FocalLesion, LesionPlan, Pattern, PlanKind, render, sample_plan
from segmentation.synth.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(40, 128, 160), spacing_zyx=(2.5, 2.0, 2.0))


def _centre(phantom, side: int):
    zz, yy, xx = np.nonzero(phantom.lungs == side)
    return float(np.median(zz)), float(np.median(yy)), float(np.median(xx))


def _plan(phantom, pattern: Pattern, radius=18.0, **kw) -> LesionPlan:
    lesion = FocalLesion(
        centre_zyx=_centre(phantom, 1),
        radius_mm=radius,
        axes=(1.0, 1.0, 1.0),
        pattern=pattern,
        irregularity=0.2,
        margin_mm=1.5,
        core=0.6,
    )
    return LesionPlan(focal=(lesion,), seed=7, **kw)


def test_ggo_raises_parenchyma_and_keeps_vessels(phantom):
    result = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, _plan(phantom, Pattern.GGO, ggo_hu=-500.0))
    ggo = result.lesions == 1
    assert ggo.sum() > 100 and not (result.lesions == 2).any()
    parenchyma = ggo & (phantom.hu < -700)
    vessels = ggo & (phantom.hu > -100)
    # Parenchyma moves to about the target (-500 +- texture), vessels keep their HU.
    assert -650 < np.median(result.hu[parenchyma]) < -350
    if vessels.any():
        assert np.abs(result.hu[vessels] - phantom.hu[vessels]).max() < 1.0
    # Outside the labelled lesion, at most the soft margin changes (never by more than the target).
    far = (result.ggo_alpha == 0) & (result.consolidation_alpha == 0)
    assert np.array_equal(result.hu[far], phantom.hu[far])


def test_consolidation_is_dense_and_labelled(phantom):
    plan = _plan(phantom, Pattern.CONSOLIDATION, consolidation_hu=0.0, bronchograms=False)
    result = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, plan)
    cons = result.lesions == 2
    assert cons.sum() > 100
    assert -120 < np.median(result.hu[cons]) < 120
    assert (result.hu[cons & (result.consolidation_alpha > 0.99)] > -300).mean() > 0.95


def test_mixed_lesion_has_a_ggo_halo_around_a_consolidated_core(phantom):
    result = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, _plan(phantom, Pattern.MIXED, radius=25.0))
    assert (result.lesions == 1).sum() > 50 and (result.lesions == 2).sum() > 50
    assert np.median(result.hu[result.lesions == 2]) > np.median(result.hu[result.lesions == 1]) + 200


@pytest.mark.parametrize("kind", list(PlanKind))
def test_sampled_plans_stay_inside_the_lungs_and_are_reproducible(phantom, kind):
    plan = sample_plan(np.random.default_rng(3), phantom.lungs, phantom.spacing_zyx, kind)
    a = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, plan)
    b = render(phantom.hu, phantom.lungs, phantom.spacing_zyx, plan)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.lesions, b.lesions)
    assert not a.lesions[phantom.lungs == 0].any()
    assert np.array_equal(a.hu[phantom.lungs == 0], phantom.hu[phantom.lungs == 0])
    if kind is PlanKind.NONE:
        assert not a.lesions.any() and np.array_equal(a.hu, phantom.hu)
    else:
        assert a.lesions.any()


def test_thick_slices_average_along_z(phantom):
    acq = Acquisition(thickness_mm=7.5, smooth_mm=0.0, sharpen=0.0, noise_hu=0.0, noise_mm=0.5)
    thick, spacing, positions = simulate(phantom.hu, phantom.spacing_zyx, acq)
    assert spacing == (7.5, 2.0, 2.0)
    assert thick.shape[0] == positions.size == 14  # positions 0, 3, ..., 39 of 40 native slices
    assert np.allclose(np.diff(positions), 3.0)
    # A slice is a weighted mean of its neighbours: bounded by them.
    k = 5
    i = int(round(positions[k]))
    window = phantom.hu[i - 3 : i + 4]
    assert (thick[k] >= window.min(axis=0) - 1e-3).all() and (thick[k] <= window.max(axis=0) + 1e-3).all()
