"""The CT severity score: each zone scored 0-5 by its lesion percentage, summed over zones.

The radiological CT severity score scores each of the 5 lung lobes 0-5 by visually estimated
involvement (total 0-25; Pan et al., Radiology 2020). No lobe model exists in lunglesion yet,
so the 6 zones of :mod:`metrics.zones` (upper, middle and lower third of each lung) stand in
for the lobes, and the total runs from 0 to 30.

Bins on the unrounded percentage ``p = 100 * lesion voxels / lung voxels`` of a zone:

====== ==================
points condition
====== ==================
0      p == 0 (no lesion voxel)
1      0 < p < 5
2      5 <= p <= 25
3      25 < p < 50
4      50 <= p <= 75
5      p > 75
====== ==================

The published bins (Pan et al.: ``< 5 %, 5-25 %, 26-49 %, 50-75 %, > 75 %``) are written for
visual estimates in whole percent; on exact fractions the gaps between them are closed as above:
a value like 25.5 % scores 3, exactly 25 % scores 2, exactly 5 % scores 2, exactly 50 % scores 4
(as "50-75 %" says), 49.9 % scores 3.
"""

from __future__ import annotations

SCORE_MAX_PER_ZONE = 5

#: Points 2, 3 and 4 with the upper limit (in %) of each and whether that limit belongs to them;
#: points 1 is ``0 < p < 5``. "26-49 %" scores 3 and "50-75 %" scores 4, so 50 % itself is a 4.
_UPPER_PCT: tuple[tuple[int, int, bool], ...] = ((2, 25, True), (3, 50, False), (4, 75, True))
_POINTS_1_BELOW_PCT = 5


def zone_points(lesion_voxels: int, lung_voxels: int) -> int | None:
    """Points (0-5) of one zone from exact voxel counts; ``None`` for a zone without lung.

    Integer arithmetic only, so the bin edges are exact (``100 * l < 5 * n`` etc.).

    Raises
    ------
    ValueError
        If a count is negative or the lesion count exceeds the lung count.
    """
    lesion_voxels = int(lesion_voxels)
    lung_voxels = int(lung_voxels)
    if lesion_voxels < 0 or lung_voxels < 0:
        raise ValueError(f"voxel counts must not be negative (lesion={lesion_voxels}, lung={lung_voxels})")
    if lesion_voxels > lung_voxels:
        raise ValueError(f"lesion voxels ({lesion_voxels}) exceed lung voxels ({lung_voxels})")
    if lung_voxels == 0:
        return None
    if lesion_voxels == 0:
        return 0
    scaled = 100 * lesion_voxels
    if scaled < _POINTS_1_BELOW_PCT * lung_voxels:
        return 1
    for points, upper, inclusive in _UPPER_PCT:
        limit = upper * lung_voxels
        if scaled < limit or (inclusive and scaled == limit):
            return points
    return SCORE_MAX_PER_ZONE


def points_for_percentage(pct: float) -> int:
    """Points (0-5) for an unrounded lesion percentage, with the same edges as :func:`zone_points`.

    Raises
    ------
    ValueError
        If ``pct`` is not a number in [0, 100].
    """
    pct = float(pct)
    if not 0.0 <= pct <= 100.0:  # also rejects NaN
        raise ValueError(f"a lesion percentage must lie in [0, 100], got {pct!r}")
    if pct == 0.0:
        return 0
    if pct < _POINTS_1_BELOW_PCT:
        return 1
    for points, upper, inclusive in _UPPER_PCT:
        if pct < upper or (inclusive and pct == upper):
            return points
    return SCORE_MAX_PER_ZONE
