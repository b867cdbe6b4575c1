"""The HU calibration peaks are found on block means, so sharp-kernel noise does not move them."""

import numpy as np

from metrics.calibration import check_calibration


def _noisy_body(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Half muscle (+40 HU), half fat (-100 HU), a third air (-1000 HU), all with SD 100 HU noise."""
    rng = np.random.default_rng(seed)
    hu = np.empty((30, 96, 96), dtype=np.float64)
    hu[:, :, :32] = 40.0
    hu[:, :, 32:64] = -100.0
    hu[:, :, 64:] = -1000.0
    hu += rng.normal(0.0, 100.0, size=hu.shape)
    return np.rint(hu).astype(np.int16), np.zeros(hu.shape, dtype=np.uint8)


def test_block_means_keep_soft_tissue_and_air_peaks_under_sharp_kernel_noise(default_metrics):
    hu, empty = _noisy_body()
    air, tissue = check_calibration(hu, empty, empty, settings=default_metrics.calibration, padding_hu=-1000)
    assert not tissue.off and abs(tissue.mode_hu - 40) <= 20
    assert not air.off and abs(air.mode_hu + 1000) <= 20


def test_single_voxels_would_merge_soft_tissue_with_fat(default_metrics):
    """The reason for block means: with stride 1 (single voxels) the same volume's mode is dragged to fat."""
    hu, empty = _noisy_body()
    single = default_metrics.calibration.model_copy(update={"sample_stride": 1})
    _, tissue = check_calibration(hu, empty, empty, settings=single, padding_hu=-1000)
    assert tissue.mode_hu < 0


def test_lung_blocks_are_excluded(default_metrics):
    hu, lungs = _noisy_body()
    hu[:, :, :32] = -850  # the muscle half becomes lung ...
    lungs[:, :, :32] = 1  # ... and is masked out: no soft tissue is left to find
    _, tissue = check_calibration(hu, lungs, lungs * 0, settings=default_metrics.calibration, padding_hu=-1000)
    assert tissue.off
