"""The synthetic thorax: adult size, anatomy the metrics' checks accept, exact lesion burdens."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from pipeline.synthetic.thorax import (
    CONSOLIDATION,
    GGO,
    LEFT_LUNG,
    RIGHT_LUNG,
    ThoraxSpec,
    build_thorax,
    thorax_phantom,
)


@pytest.fixture(scope="module")
def anatomy():
    return build_thorax(ThoraxSpec(seed=3))


def _image(phantom) -> sitk.Image:
    image = sitk.GetImageFromArray(phantom.hu)
    image.SetSpacing(phantom.geometry.spacing)
    image.SetOrigin(phantom.geometry.origin)
    return image


def test_adult_lungs_on_the_right_sides_and_airways_outside_them(anatomy):
    phantom = anatomy.render(lesion_pct=0.0, noise_seed=1)
    truth = phantom.truth
    assert 3000.0 < truth.lung_ml < 6000.0  # adult lungs on CT (the metrics flag < 1 L or > 9 L)
    assert truth.lung_right_ml > truth.lung_left_ml  # the heart takes room from the left lung
    nx = phantom.lungs.shape[2]
    right_x = np.nonzero(phantom.lungs == RIGHT_LUNG)[2]
    left_x = np.nonzero(phantom.lungs == LEFT_LUNG)[2]
    # Patient right is low x in LPS: the right lung lies in the image's left half.
    assert right_x.max() < nx // 2 < left_x.min()
    assert truth.lesion_ml == 0.0 and not phantom.lesions.any()
    # The trachea above the lungs: air inside the body that is not lung.
    top = phantom.hu[-1]
    centre = top[top.shape[0] // 2 - 40 : top.shape[0] // 2 + 40, top.shape[1] // 2 - 10 : top.shape[1] // 2 + 10]
    assert (centre < -900).sum() > 20 and not phantom.lungs[-1].any()


def test_hounsfield_units_pass_the_metrics_calibration_and_plausibility_checks(anatomy):
    from metrics.image import measure_image
    from pipeline.config import load_settings
    from segmentation.result import LungSegmentation

    phantom = anatomy.render(lesion_pct=12.0, consolidation_fraction=0.3, noise_seed=2)
    image = _image(phantom)
    labels = []
    for array in (phantom.lungs, phantom.lesions):
        label = sitk.GetImageFromArray(array)
        label.CopyInformation(image)
        labels.append(label)
    settings = load_settings()
    row = measure_image(
        image,
        LungSegmentation(lungs=labels[0], lesions=labels[1], model_id="truth", model_sha256=""),
        slice_thickness_mm=5.0,
        settings=settings.metrics,
        padding_hu=settings.hu.padding_hu,
    ).as_row()
    assert row["quality_flags"] == ()
    assert abs(row["air_hu"] + 1000) <= 10
    assert abs(row["soft_tissue_hu"] - 40) <= 20
    assert row["lesion_pct"] == pytest.approx(phantom.truth.lesion_pct, abs=1e-3)

    hu = phantom.hu.astype(float)
    normal = hu[(phantom.lungs > 0) & (phantom.lesions == 0)]
    assert -880 < np.median(normal) < -800
    assert -700 < np.median(hu[phantom.lesions == GGO]) < -520
    assert -60 < np.median(hu[phantom.lesions == CONSOLIDATION]) < 60
    assert hu.max() > 600  # cortical bone
    outside = hu[(phantom.lungs == 0) & (hu < -900)]
    assert abs(np.median(outside) + 1000) < 3 and 4 < outside.std() < 15  # CT noise in the air too


@pytest.mark.parametrize(("lesion_pct", "consolidation_fraction"), [(2.5, 0.1), (10.0, 0.25), (35.0, 0.5)])
def test_the_requested_burden_is_reached_exactly(anatomy, lesion_pct, consolidation_fraction):
    phantom = anatomy.render(lesion_pct=lesion_pct, consolidation_fraction=consolidation_fraction, noise_seed=3)
    truth = phantom.truth
    assert truth.lesion_pct == pytest.approx(lesion_pct, abs=0.01)
    assert truth.consolidation_ml / truth.lesion_ml == pytest.approx(consolidation_fraction, abs=0.002)
    assert not phantom.lesions[phantom.lungs == 0].any()  # lesions only inside the lungs
    assert truth.ggo_pct + truth.consolidation_pct == pytest.approx(truth.lesion_pct)


def test_lesions_grow_in_place_and_lie_where_covid_pneumonia_does(anatomy):
    small = anatomy.render(lesion_pct=5.0, consolidation_fraction=0.25, noise_seed=4)
    large = anatomy.render(lesion_pct=20.0, consolidation_fraction=0.25, noise_seed=5)
    assert np.all(large.lesions[small.lesions > 0] > 0)  # a smaller burden is nested in a larger one
    assert np.all(large.lesions[small.lesions == CONSOLIDATION] == CONSOLIDATION)
    assert np.array_equal(small.lungs, large.lungs)

    lungs, lesions = large.lungs > 0, large.lesions > 0
    z, y, _ = np.nonzero(lungs)
    zl, yl, _ = np.nonzero(lesions)
    # Posterior (larger y) and lower (smaller z: slices go to the head) predominant ...
    assert np.mean(yl) > np.mean(y) and np.mean(zl) < np.mean(z)
    # ... peripheral: lesion voxels lie closer to the pleura than lung voxels on average.
    depth = ndi.distance_transform_edt(lungs, sampling=large.geometry.spacing[::-1])
    assert depth[lesions].mean() < 0.8 * depth[lungs].mean()
    # ... and bilateral, in several separate patches.
    assert (large.lesions[large.lungs == RIGHT_LUNG] > 0).any() and (large.lesions[large.lungs == LEFT_LUNG] > 0).any()
    assert ndi.label(lesions)[1] >= 3


def test_same_seeds_same_scan_and_noise_differs_between_scans():
    spec = ThoraxSpec(shape=(24, 96, 96), spacing=(3.6, 3.6, 12.0), seed=9)
    first = thorax_phantom(spec, lesion_pct=8.0, noise_seed=1)
    again = thorax_phantom(spec, lesion_pct=8.0, noise_seed=1)
    other_noise = thorax_phantom(spec, lesion_pct=8.0, noise_seed=2)
    assert np.array_equal(first.hu, again.hu) and np.array_equal(first.lesions, again.lesions)
    assert not np.array_equal(first.hu, other_noise.hu)
    assert np.array_equal(first.lesions, other_noise.lesions)
    sx, sy, sz = spec.spacing
    assert first.geometry.spacing == (sx, sy, sz)
    assert first.geometry.origin[0] == pytest.approx(-(spec.shape[2] - 1) / 2 * sx)


@pytest.mark.parametrize("kwargs", [{"shape": (4, 64, 64)}, {"spacing": (1.0, 0.0, 5.0)}, {"scale": 2.0}])
def test_invalid_specs_are_refused(kwargs):
    with pytest.raises(ValueError):
        ThoraxSpec(**kwargs)


def test_invalid_burdens_are_refused(anatomy):
    with pytest.raises(ValueError, match="lesion_pct"):
        anatomy.render(lesion_pct=90.0)
    with pytest.raises(ValueError, match="consolidation_fraction"):
        anatomy.render(lesion_pct=5.0, consolidation_fraction=1.5)
