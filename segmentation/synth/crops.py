"""Lung masks of real sub-volumes cut close around one lung, where the classical method fails.

The classical lung mask (:func:`segmentation.classical.segment_lungs`) starts from the body
outline. A sub-volume exported around a tumour (the radiomics-phantom NSCLC crops) has none:
the lung reaches the edges of the image, and the classical method finds about a tenth of it.
Here the lung is the largest component of air below -400 HU that is not pure air (outside the
body, the trachea and the main bronchi are at or below :data:`~segmentation.postprocess.PURE_AIR_HU`
over a 5 x 5 neighbourhood; aerated lung, with its vessels and walls, is not), closed and filled
like the classical mask, with the lesion the data set outlines counted as lung. Every such crop
holds one lung, named by its source (:attr:`~segmentation.synth.backgrounds.BackgroundSource.crop_side`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from segmentation.classical import ball, fill_holes_per_slice, smooth
from segmentation.postprocess import PURE_AIR_HU

#: Bump when :func:`crop_lungs` changes (invalidates cached masks).
CROP_MASK_VERSION = "crop-1"
#: Lung air: below this (Gaussian sigma 0.7 mm), as in the classical mask.
LUNG_AIR_HU = -400.0


def crop_lungs(hu: np.ndarray, spacing_zyx: tuple[float, float, float], *, side: int, lesion: np.ndarray) -> np.ndarray:
    """Lung label array (``side`` inside the lung, 0 elsewhere) of a canonical HU crop.

    Parameters
    ----------
    hu
        Canonical (z, y, x) HU array of the crop.
    spacing_zyx
        Its voxel spacing in mm.
    side
        :class:`~segmentation.result.LungLabel` value of the one lung the crop holds.
    lesion
        Outlined lesion (e.g. a GTV), bool, same shape: a lesion is lung.
    """
    pure = ndi.median_filter(hu, size=(1, 5, 5)) <= PURE_AIR_HU
    not_lung = ndi.binary_dilation(pure, structure=np.ones((1, 3, 3), bool), iterations=2)
    air = (smooth(hu, spacing_zyx, sigma_mm=0.7) < LUNG_AIR_HU) & ~not_lung
    labels, n = ndi.label(air)
    lungs = np.zeros(hu.shape, np.uint8)
    if n == 0:
        return lungs
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    lung = (labels == int(np.argmax(sizes))) | lesion
    # Closing a padded array only adds voxels, so the lesion stays inside.
    closed = ndi.binary_closing(np.pad(lung, 4), structure=ball(2.0, spacing_zyx))[4:-4, 4:-4, 4:-4]
    lungs[fill_holes_per_slice(closed) & ~pure] = side
    return lungs


def unknown_dense(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], lungs: np.ndarray, *, threshold_hu: float
) -> np.ndarray:
    """Lung whose 2 mm neighbourhood in the lung (Gaussian sigma) is at least ``threshold_hu``: of unknown nature.

    In a cancer patient's crop, dense lung outside the outlined tumour may be dependent density,
    atelectasis or real ground glass; no reference says which, so it is taught neither way. The
    mean is taken over lung voxels only (normalised convolution), so the chest wall does not make
    the subpleural rim dense.
    """
    lung = lungs > 0
    weight = smooth(lung.astype(np.float32), spacing_zyx, sigma_mm=2.0)
    total = smooth(np.where(lung, hu, 0.0).astype(np.float32), spacing_zyx, sigma_mm=2.0)
    mean = np.divide(total, weight, out=np.full(hu.shape, -1024.0, np.float32), where=weight > 1e-3)
    return (mean >= threshold_hu) & lung
