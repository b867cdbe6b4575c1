"""Severity score bins at their exact edges, on voxel counts and on percentages."""

from __future__ import annotations

import pytest

from metrics.severity import points_for_percentage, zone_points


@pytest.mark.parametrize(
    ("pct", "points"),
    [
        (0.0, 0),
        (1e-9, 1),
        (4.999999, 1),
        (5.0, 2),
        (25.0, 2),
        (25.000001, 3),
        (25.5, 3),
        (26.0, 3),
        (49.999999, 3),
        (50.0, 4),  # Pan et al.: 26-49 % -> 3, 50-75 % -> 4
        (50.5, 4),
        (75.0, 4),
        (75.000001, 5),
        (100.0, 5),
    ],
)
def test_points_for_percentage_edges(pct, points):
    assert points_for_percentage(pct) == points


@pytest.mark.parametrize(
    ("lesion", "lung", "points"),
    [
        (0, 1000, 0),
        (1, 1000, 1),
        (49, 1000, 1),
        (50, 1000, 2),  # exactly 5 %
        (250, 1000, 2),  # exactly 25 %
        (251, 1000, 3),
        (499, 1000, 3),
        (500, 1000, 4),  # exactly 50 %: "50-75 %" scores 4
        (501, 1000, 4),
        (1, 2, 4),  # 50 % with a small denominator
        (750, 1000, 4),  # exactly 75 %
        (751, 1000, 5),
        (1000, 1000, 5),
        (1, 3, 3),  # 33.3 %
        (1, 20, 2),  # 5 % with a small denominator
        (1, 21, 1),  # 4.76 %
        (0, 0, None),  # no lung in the zone
    ],
)
def test_zone_points_use_exact_integer_edges(lesion, lung, points):
    assert zone_points(lesion, lung) == points
    if lung:
        assert points_for_percentage(100 * lesion / lung) == points


def test_one_third_is_not_hurt_by_floating_point():
    # 100 * 1 / 20 == 5.0 exactly, but e.g. 7/140 goes through a float division: still 5 % -> 2 points
    assert zone_points(7, 140) == 2
    assert zone_points(3, 60) == 2


@pytest.mark.parametrize("bad", [-0.1, 100.1, float("nan")])
def test_percentage_outside_range_is_refused(bad):
    with pytest.raises(ValueError):
        points_for_percentage(bad)


def test_inconsistent_counts_are_refused():
    with pytest.raises(ValueError, match="exceed"):
        zone_points(5, 4)
    with pytest.raises(ValueError, match="negative"):
        zone_points(-1, 4)
