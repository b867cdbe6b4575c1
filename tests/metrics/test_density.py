"""Density statistics, percentiles and HU bands against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.density import HU_BANDS, HUBand, histograms_by_class, merge
from metrics.scan import measure_scan


def test_mean_sd_percentiles_match_numpy():
    rng = np.random.default_rng(7)
    values = rng.integers(-1024, 300, size=5000).astype(np.int16)
    (hist,) = histograms_by_class(values, np.zeros(values.size, np.uint8), n_classes=1)
    mean, sd = hist.mean_sd()
    assert mean == pytest.approx(values.astype(float).mean(), abs=1e-9)
    assert sd == pytest.approx(values.astype(float).std(ddof=0), abs=1e-9)
    for q in (0, 1, 10, 50, 90, 99, 100):
        assert hist.percentile(q) == int(np.percentile(values, q, method="inverted_cdf"))


def test_percentile_on_tiny_samples_is_a_measured_value():
    (hist,) = histograms_by_class(np.array([-900, -100, 0, 20], np.int16), np.zeros(4, np.uint8), n_classes=1)
    assert [hist.percentile(q) for q in (10, 25, 50, 75, 90)] == [-900, -900, -100, 0, 20]


def test_bands_edges_are_lower_inclusive():
    edges = np.array([-1000, -951, -950, -751, -750, -301, -300, 49, 50, 400], np.int16)
    (hist,) = histograms_by_class(edges, np.zeros(edges.size, np.uint8), n_classes=1)
    counts = hist.band_counts()
    assert counts == {
        HUBand.EMPHYSEMA_LIKE: 2,  # -1000, -951
        HUBand.NORMALLY_AERATED: 2,  # -950, -751
        HUBand.POORLY_AERATED: 2,  # -750, -301
        HUBand.NON_AERATED: 2,  # -300, 49
        HUBand.ABOVE_50HU: 2,  # 50, 400
    }
    assert [b.bounds for b in HU_BANDS] == [(None, -950), (-950, -750), (-750, -300), (-300, 50), (50, None)]


def test_bands_outside_the_histogram_range():
    (hist,) = histograms_by_class(np.array([-400, -350], np.int16), np.zeros(2, np.uint8), n_classes=1)
    assert hist.band_counts()[HUBand.POORLY_AERATED] == 2
    assert sum(hist.band_counts().values()) == 2


def test_classes_and_merge():
    values = np.array([-800, -800, -100, 30, 30, 30], np.int16)
    classes = np.array([0, 0, 1, 2, 2, 2], np.uint8)
    h = histograms_by_class(values, classes, n_classes=3)
    assert [x.n for x in h] == [2, 1, 3]
    assert merge(h).n == 6
    assert merge([h[1], h[2]]).mean_sd()[0] == pytest.approx((-100 + 90) / 4)


def test_empty_region():
    (hist,) = histograms_by_class(np.array([], np.int16), np.array([], np.uint8), n_classes=1)
    assert hist.mean_sd() == (None, None) and hist.percentile(50) is None


def test_scan_density_columns(empty_volume, metrics_settings):
    hu, lungs, lesions = empty_volume((6, 10, 10))
    lungs[1:5, 2:8, 2:8] = 1  # 144 voxels
    lesions[1:5, 2:4, 2:8] = 1  # 48 GGO
    lesions[1:5, 4:5, 2:8] = 2  # 24 consolidation
    hu[lungs > 0] = -960  # 72 clear voxels: emphysema-like
    hu[lesions == 1] = -500  # poorly aerated
    hu[lesions == 2] = 50  # above 50
    m = measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=lesions,
        spacing_zyx=(1, 1, 1),
        superior_sign=1,
        slice_thickness_mm=1,
        settings=metrics_settings,
    )
    assert m.non_lesion_mean_hu == -960.0 and m.non_lesion_sd_hu == 0.0
    assert m.ggo_mean_hu == -500.0 and m.consolidation_mean_hu == 50.0
    assert m.lesion_mean_hu == pytest.approx((48 * -500 + 24 * 50) / 72)
    lung_values = hu[lungs > 0].astype(float)
    assert m.lung_mean_hu == pytest.approx(lung_values.mean())
    assert m.lung_sd_hu == pytest.approx(lung_values.std())
    assert (m.lung_p10_hu, m.lung_p50_hu, m.lung_p90_hu) == (-960, -960, 50)
    assert m.lung_emphysema_like_pct == 50.0
    assert m.lung_normally_aerated_pct == 0.0
    assert m.lung_poorly_aerated_pct == pytest.approx(100 * 48 / 144)
    assert m.lung_non_aerated_pct == 0.0
    assert m.lung_above_50hu_pct == pytest.approx(100 * 24 / 144)
