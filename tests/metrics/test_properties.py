"""Property tests (hypothesis, derandomized so CI is reproducible): invariants of measure_scan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from metrics.scan import measure_scan
from metrics.zones import LungSide

DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

shapes = st.tuples(st.integers(1, 9), st.integers(1, 7), st.integers(1, 7))
spacings = st.tuples(*(st.floats(0.2, 6.0, allow_nan=False) for _ in range(3)))


@st.composite
def volumes(draw, *, lesions_inside: bool):
    shape = draw(shapes)
    lungs = draw(arrays(np.uint8, shape, elements=st.integers(0, 2)))
    lesions = draw(arrays(np.uint8, shape, elements=st.integers(0, 2)))
    if lesions_inside:
        lesions = np.where(lungs > 0, lesions, 0).astype(np.uint8)
    hu = draw(arrays(np.int16, shape, elements=st.integers(-1100, 400)))
    return hu, lungs, lesions


def _measure(hu, lungs, lesions, settings_, spacing, sign):
    return measure_scan(
        hu=hu,
        lungs=lungs,
        lesions=lesions,
        spacing_zyx=spacing,
        superior_sign=sign,
        slice_thickness_mm=None,
        settings=settings_,
    )


PCT_FIELDS = (
    "lesion_pct",
    "ggo_pct",
    "consolidation_pct",
    "lesion_right_pct",
    "lesion_left_pct",
    "ggo_right_pct",
    "ggo_left_pct",
    "consolidation_right_pct",
    "consolidation_left_pct",
    "lung_emphysema_like_pct",
    "lung_normally_aerated_pct",
    "lung_poorly_aerated_pct",
    "lung_non_aerated_pct",
    "lung_above_50hu_pct",
)


@DETERMINISTIC
@given(volume=volumes(lesions_inside=False), spacing=spacings, sign=st.sampled_from([1, -1]))
def test_fractions_volumes_and_zones(metrics_settings, volume, spacing, sign):
    hu, lungs, lesions = volume
    m = _measure(hu, lungs, lesions, metrics_settings, spacing, sign)
    for name in PCT_FIELDS:
        value = getattr(m, name)
        assert value is None or 0.0 <= value <= 100.0, name
    for zone in m.zones:
        assert zone.lesion_pct is None or 0.0 <= zone.lesion_pct <= 100.0
        assert zone.lesion_ml <= zone.lung_ml
    assert m.lesion_ml <= m.lung_ml
    assert m.lesion_right_ml <= m.lung_right_ml and m.lesion_left_ml <= m.lung_left_ml
    assert m.ggo_ml + m.consolidation_ml == pytest.approx(m.lesion_ml, rel=1e-12, abs=1e-15)
    # zones partition each lung: per-zone volumes add up to the whole, exactly in voxels
    v = m.voxel_ml
    for side, lung_ml, lesion_ml in (
        (LungSide.RIGHT, m.lung_right_ml, m.lesion_right_ml),
        (LungSide.LEFT, m.lung_left_ml, m.lesion_left_ml),
    ):
        zones = [z for z in m.zones if z.side is side]
        assert sum(round(z.lung_ml / v) for z in zones) == round(lung_ml / v)
        assert sum(round(z.lesion_ml / v) for z in zones) == round(lesion_ml / v)
        assert sum(z.lung_ml for z in zones) == pytest.approx(lung_ml, rel=1e-12, abs=1e-15)
    assert round(m.lung_ml / v) == int(np.count_nonzero(lungs))
    assert round(m.lesion_ml / v) == int(np.count_nonzero((lesions > 0) & (lungs > 0)))
    scores = [z.score for z in m.zones if z.score is not None]
    assert m.severity_zones_n == len(scores)
    if scores:
        assert m.severity_score == sum(scores) and 0 <= m.severity_score <= 30
    else:
        assert m.severity_score is None
    if m.lung_ml:
        bands = sum(getattr(m, f) for f in PCT_FIELDS[-5:])
        assert bands == pytest.approx(100.0)


@DETERMINISTIC
@given(volume=volumes(lesions_inside=True), spacing=spacings)
def test_slice_order_does_not_matter(metrics_settings, volume, spacing):
    hu, lungs, lesions = volume
    head_first = _measure(hu, lungs, lesions, metrics_settings, spacing, 1)
    feet_first = _measure(hu[::-1], lungs[::-1], lesions[::-1], metrics_settings, spacing, -1)
    assert head_first == feet_first
