"""Lung masks of sub-volumes cut around one lung (segmentation/synth/crops.py), on a synthetic crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.result import LungLabel
from segmentation.synth.backgrounds import DataRoot, load_background, source
from segmentation.synth.crops import crop_lungs, unknown_dense
from segmentation.synth.targets import Targets

SPACING = (3.0, 1.0, 1.0)


@pytest.fixture
def crop() -> tuple[np.ndarray, np.ndarray]:
    """A 12 x 64 x 64 crop: chest wall and mediastinum (+40 HU), a lung cut by the top and left edges,
    air outside the body in the bottom-right corner, a trachea, a dense dependent band and a tumour."""
    rng = np.random.default_rng(7)
    hu = np.full((12, 64, 64), 40.0, np.float32)
    hu[:, :40, :40] = -850.0 + rng.normal(0, 20, (12, 40, 40))  # lung, reaching the top and left edges
    hu[:, 20:22, 5:35] = 30.0  # a vessel: stays lung
    hu[:, 32:40, 5:38] = -450.0  # dense dependent lung
    hu[:, 52:, 52:] = -1000.0 + rng.normal(0, 5, (12, 12, 12))  # air outside the body
    hu[:, 46:53, 28:36] = -1000.0  # the trachea, inside the mediastinum ...
    hu[:, 38:47, 30:34] = -1000.0  # ... opening into the lung through a main bronchus
    tumour = np.zeros(hu.shape, bool)
    tumour[4:8, 10:18, 10:18] = True
    hu[tumour] = 35.0
    return hu, tumour


def test_the_lung_reaches_the_edges_and_holds_its_tumour(crop):
    hu, tumour = crop
    lungs = crop_lungs(hu, SPACING, side=int(LungLabel.LEFT_LUNG), lesion=tumour)
    assert set(np.unique(lungs)) == {0, int(LungLabel.LEFT_LUNG)}
    lung = lungs > 0
    assert lung[:, 0, 5:35].all() and lung[:, 5:30, 0].all()  # up to the cut edges
    assert lung[tumour].all() and lung[:, 20:22, 10:30].all()  # the tumour and the vessel are lung
    assert lung[:, 34:38, 10:26].all()  # dense lung is lung
    assert not lung[:, 52:, 52:].any() and not lung[:, 46:53, 28:36].any()  # outside air, trachea
    assert not lung[:, 45:, :28].any()  # the chest wall below the lung


def test_dense_lung_is_unknown_but_the_subpleural_rim_is_not(crop):
    hu, tumour = crop
    lungs = crop_lungs(hu, SPACING, side=int(LungLabel.LEFT_LUNG), lesion=tumour)
    dense = unknown_dense(hu, SPACING, lungs, threshold_hu=-650.0)
    assert dense[:, 34:38, 10:26].all() and dense[tumour].all()
    # Aerated lung next to the chest wall stays known: the mean is over lung voxels only.
    assert not dense[:, 2:28, 36:40].any()
    assert not dense[lungs == 0].any()


def test_a_crop_source_loads_with_the_crop_mask_and_its_unknowns(tmp_path: Path, crop):
    hu, tumour = crop
    labels = tmp_path / "radiomics-phantom-nsclc-gtv" / "labels"
    labels.mkdir(parents=True)
    for array, name in ((hu.astype(np.int16), "ct"), (tumour.astype(np.uint8), "labels")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(SPACING[::-1])
        sitk.WriteImage(image, str(labels / f"pat_3_{name}.nii.gz"))
    background = load_background(source("nsclc-3"), DataRoot(tmp_path), tmp_path / "cache", targets=Targets.VISIBLE)
    assert set(np.unique(background.lungs)) == {0, int(LungLabel.LEFT_LUNG)}  # pat_3's crop holds a left lung
    assert background.lungs[background.nodules].all()  # the tumour and the dense lung, all inside the lung
    assert background.nodules.sum() > tumour.sum()
    again = load_background(source("nsclc-3"), DataRoot(tmp_path), tmp_path / "cache", targets=Targets.VISIBLE)
    assert np.array_equal(again.lungs, background.lungs)  # read back from the mask cache
    assert len(list((tmp_path / "cache" / "backgrounds").glob("nsclc-3-crop-1-*.npz"))) == 1
