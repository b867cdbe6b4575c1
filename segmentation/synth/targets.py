"""What the reference of a synthetic case calls lesion: the training-target rules.

A synthetic lesion is labelled where its opacity ramp reaches one half (``lesions.py``). Where
the background is already as dense as a ground-glass opacity's target (vessels, dependent lung,
a faint GGO over denser lung), the rendering raises nothing there, so the label says "lesion"
on voxels that look exactly like normal lung: no reader and no model can see them.

:class:`Targets` names the rule a training cache or a validation set was made with:

* ``opacity`` (lunglesion-seg-v1 and -v2): every labelled voxel is scored and taught;
* ``visible``: ground-glass voxels the lesion does not visibly raise (:func:`unseen_ggo`) are
  left out of the lesion loss and of every score, and real findings of the training
  backgrounds declared after v2 was trained (the popi nodule) are left out as well.

The opacity rule stays available so that ``lunglesion train`` still reproduces the models
trained with it (``configs/train-stage1.yaml``, ``configs/train-stage2.yaml``).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

#: A ground-glass voxel counts as unseen where the lesion at full opacity would raise the
#: 2 mm neighbourhood's mean attenuation by less than this (HU). Image noise is 0-90 HU per voxel,
#: and a regional rise of this size is at the limit of what a lung window shows.
UNSEEN_RISE_HU = 50.0

#: Scale (mm, Gaussian sigma) over which the rise is averaged: vessels crossing a GGO are not
#: raised themselves but lie inside raised parenchyma, so they stay labelled.
UNSEEN_SIGMA_MM = 2.0


class Targets(StrEnum):
    """Rules for the reference labels of synthetic cases (see the module docstring)."""

    OPACITY = "opacity"
    VISIBLE = "visible"

    def includes(self, since: Targets) -> bool:
        """Whether something introduced with rule ``since`` applies under this rule."""
        order = list(Targets)
        return order.index(self) >= order.index(since)


def unseen_ggo(
    rise_hu: np.ndarray,
    lesion_region: np.ndarray,
    ggo_label: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    *,
    threshold_hu: float = UNSEEN_RISE_HU,
    sigma_mm: float = UNSEEN_SIGMA_MM,
) -> np.ndarray:
    """Ground-glass labels the lesion does not visibly raise.

    Parameters
    ----------
    rise_hu
        How much the lesion raises each voxel at full opacity (HU, >= 0).
    lesion_region
        Voxels the lesion reaches at all (opacity > 0, inside the lung): the average is taken
        over these only (normalised convolution), so a lesion's edge is not diluted by the
        normal lung beside it.
    ggo_label
        The voxels labelled GGO.
    spacing_zyx
        Voxel size in mm.

    Returns
    -------
    numpy.ndarray
        Boolean mask: GGO-labelled voxels whose neighbourhood rise is below ``threshold_hu``.
    """
    from scipy import ndimage as ndi  # (this module is imported by the settings: keep it light)

    if not ggo_label.any():
        return np.zeros(ggo_label.shape, bool)
    sigma = [sigma_mm / s for s in spacing_zyx]
    weight = lesion_region.astype(np.float32)
    total = ndi.gaussian_filter(np.where(lesion_region, rise_hu, 0.0).astype(np.float32), sigma, mode="nearest")
    norm = ndi.gaussian_filter(weight, sigma, mode="nearest")
    mean_rise = total / np.maximum(norm, 1e-3)
    return ggo_label & (mean_rise < threshold_hu)
