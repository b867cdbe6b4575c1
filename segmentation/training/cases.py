"""One synthetic case: background + lesion plan + acquisition -> a CT series with exact reference labels.

The same case can be delivered two ways:

* :func:`working_sample`: the network's working grid (normalised image, lung and lesion
  targets), which is what the training cache stores;
* :func:`acquired_case`: the simulated series as a SimpleITK image in HU with reference label
  images on its grid, which is what the validation set and ``lunglesion evaluate`` use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from segmentation.grid import AxisMap, axis_taps, label_image_like
from segmentation.preprocess import PreprocessParameters, WorkingGrid, resample_to_working
from segmentation.result import LesionLabel, LungLabel
from segmentation.synth.acquisition import Acquisition, simulate, thick_slice_taps
from segmentation.synth.backgrounds import Background
from segmentation.synth.lesions import IGNORE_LABEL, LesionPlan, render
from segmentation.synth.targets import UNSEEN_RISE_HU, Targets


@dataclass
class SimulatedSeries:
    """A background with lesions, after the simulated acquisition (canonical arrays)."""

    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]
    z_positions: np.ndarray
    """Each simulated slice's z position in native slice-index units."""
    thickness_mm: float
    native_lungs: np.ndarray
    native_lesions: np.ndarray
    native_ignore: np.ndarray
    """Not taught (``IGNORE_LABEL`` in the lesion targets): real nodules and findings, and unseen GGO."""
    native_spacing_zyx: tuple[float, float, float]
    native_unseen: np.ndarray | None = None
    """GGO labels the rendering does not visibly raise (:class:`Targets.VISIBLE` only, else ``None``)."""


def simulate_case(
    background: Background, plan: LesionPlan, acq: Acquisition, *, targets: Targets = Targets.OPACITY
) -> SimulatedSeries:
    """Place the lesions, then acquire; ``targets`` decides what the reference leaves out."""
    unseen_rise = UNSEEN_RISE_HU if targets.includes(Targets.VISIBLE) else None
    lesioned = render(background.hu, background.lungs, background.spacing_zyx, plan, unseen_rise_hu=unseen_rise)
    ignore = background.nodules & (lesioned.lesions == 0) & (background.lungs > 0)
    if ignore.any():
        from scipy import ndimage as ndi

        ignore = ndi.binary_dilation(ignore, iterations=2) & (lesioned.lesions == 0)
    if lesioned.unseen is not None:
        ignore = ignore | lesioned.unseen
    hu, spacing, positions = simulate(lesioned.hu, background.spacing_zyx, acq)
    return SimulatedSeries(
        hu=hu,
        spacing_zyx=spacing,
        z_positions=positions,
        thickness_mm=max(acq.thickness_mm, background.spacing_zyx[0]),
        native_lungs=background.lungs,
        native_lesions=lesioned.lesions,
        native_ignore=ignore,
        native_spacing_zyx=background.spacing_zyx,
        native_unseen=lesioned.unseen,
    )


def _native_z_taps(series: SimulatedSeries, acquired_positions: np.ndarray, support_mm: float):
    """Taps on the native z axis at positions given in acquired-slice index units."""
    n_acq = series.hu.shape[0]
    native = np.interp(acquired_positions, np.arange(n_acq), series.z_positions)
    half = max(support_mm, series.native_spacing_zyx[0]) / series.native_spacing_zyx[0]
    return axis_taps(series.native_lungs.shape[0], native, half_width=half)


def _soft_argmax(channels: list[np.ndarray]) -> np.ndarray:
    rest = np.clip(1.0 - sum(channels), 0.0, None)
    return np.argmax(np.stack([rest, *channels]), axis=0).astype(np.uint8)


def working_sample(
    series: SimulatedSeries, params: PreprocessParameters
) -> tuple[np.ndarray, np.ndarray, np.ndarray, WorkingGrid]:
    """Network input and targets on the working grid of the simulated series.

    Returns the normalised image (float32), lung targets (:class:`LungLabel`), lesion targets
    (:class:`LesionLabel`, ``IGNORE_LABEL`` where unknown) and the grid.
    """
    from segmentation.preprocess import to_working

    image, grid = to_working(series.hu, series.spacing_zyx, params)
    support = max(params.spacing_zyx_mm[0], series.thickness_mm)
    z_taps = _native_z_taps(series, grid.z.working_positions(), support)

    def soft(mask: np.ndarray) -> np.ndarray:
        return resample_to_working(mask.view(np.uint8), grid, fill=0.0, z_taps=z_taps)

    lungs = _soft_argmax([soft(series.native_lungs == label) for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)])
    lesions = _soft_argmax(
        [soft(series.native_lesions == label) for label in (LesionLabel.GGO, LesionLabel.CONSOLIDATION)]
    )
    if series.native_ignore.any():
        lesions[soft(series.native_ignore) > 0.3] = IGNORE_LABEL
    return image, lungs, lesions, grid


def _to_acquired(series: SimulatedSeries) -> Callable[[np.ndarray], np.ndarray] | None:
    """Resampler of a native-grid mask onto the simulated series' slices (soft, 0..1); None if the grids agree."""
    n_acq = series.hu.shape[0]
    if n_acq == series.native_lungs.shape[0] and np.allclose(series.z_positions, np.arange(n_acq)):
        return None
    z_taps = _native_z_taps(series, np.arange(n_acq, dtype=float), series.thickness_mm)
    full = WorkingGrid(
        input_shape=series.native_lungs.shape,  # type: ignore[arg-type]
        z=AxisMap(0, n_acq, n_acq),
        y=AxisMap(0, series.hu.shape[1], series.hu.shape[1]),
        x=AxisMap(0, series.hu.shape[2], series.hu.shape[2]),
        pad_y=(0, 0),
        pad_x=(0, 0),
    )

    def soft(mask: np.ndarray) -> np.ndarray:
        return resample_to_working(mask.view(np.uint8), full, fill=0.0, z_taps=z_taps)

    return soft


def acquired_labels(series: SimulatedSeries) -> tuple[np.ndarray, np.ndarray]:
    """Reference lung and lesion labels on the simulated series' own grid."""
    soft = _to_acquired(series)
    if soft is None:
        return series.native_lungs.copy(), series.native_lesions.copy()
    lungs = _soft_argmax([soft(series.native_lungs == label) for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)])
    lesions = _soft_argmax(
        [soft(series.native_lesions == label) for label in (LesionLabel.GGO, LesionLabel.CONSOLIDATION)]
    )
    lesions[lungs == 0] = 0
    return lungs, lesions


def acquired_case(series: SimulatedSeries, background: Background) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """The simulated series as an int16 HU image in the background's orientation, with reference labels."""
    lungs, lesions = acquired_labels(series)
    reference = _series_geometry(series, background)
    hu = np.rint(series.hu).astype(np.int16)
    image = sitk.GetImageFromArray(np.ascontiguousarray(background.canonical.backward(hu)))
    image.CopyInformation(reference)
    return (
        image,
        label_image_like(lungs, background.canonical, reference),
        label_image_like(lesions, background.canonical, reference),
    )


def acquired_ignore(series: SimulatedSeries, background: Background) -> sitk.Image | None:
    """What is not scored on the simulated series' grid (1), or None if nothing is.

    The background's real findings: a simulated slice is excluded wherever its slice profile
    reaches into one, so the mask errs on the side of excluding. Unseen GGO
    (:class:`Targets.VISIBLE`): where more than half of the slice profile is unseen, the rule
    the lesion labels themselves follow.
    """
    findings = background.findings if background.findings is not None and background.findings.any() else None
    unseen = series.native_unseen if series.native_unseen is not None and series.native_unseen.any() else None
    if findings is None and unseen is None:
        return None
    soft = _to_acquired(series)
    ignore = np.zeros(series.hu.shape, bool)
    if findings is not None:
        ignore |= findings if soft is None else soft(findings) > 0
    if unseen is not None:
        ignore |= unseen if soft is None else soft(unseen) > 0.5
    return label_image_like(ignore.astype(np.uint8), background.canonical, _series_geometry(series, background))


def _series_geometry(series: SimulatedSeries, background: Background) -> sitk.Image:
    """An empty image with the simulated series' geometry (native in-plane grid, new slices)."""
    canon = background.canonical
    native = background.image
    n_acq = series.hu.shape[0]
    # Size and spacing along the image's own index axes (x, y, z); the canonical z axis is one of them.
    z_array_axis = canon.perm[0]  # array axis (z, y, x order) that became canonical z
    z_index_axis = 2 - z_array_axis
    size = list(native.GetSize())
    spacing = list(native.GetSpacing())
    size[z_index_axis] = n_acq
    spacing[z_index_axis] = series.spacing_zyx[0]
    # Position of simulated slice 0 along the native index axis (flipped canonical axes count backwards).
    first_native = series.z_positions[0]
    if canon.flips[0]:
        first_native = native.GetSize()[z_index_axis] - 1 - series.z_positions[-1]
    index = [0.0, 0.0, 0.0]
    index[z_index_axis] = float(first_native)
    origin = native.TransformContinuousIndexToPhysicalPoint(index)
    reference = sitk.Image([int(v) for v in size], sitk.sitkUInt8)
    reference.SetSpacing(spacing)
    reference.SetOrigin(origin)
    reference.SetDirection(native.GetDirection())
    return reference


def with_thickness(acq: Acquisition, thickness_mm: float) -> Acquisition:
    """A copy of ``acq`` with another slice thickness."""
    return Acquisition(
        thickness_mm=thickness_mm,
        smooth_mm=acq.smooth_mm,
        sharpen=acq.sharpen,
        noise_hu=acq.noise_hu,
        noise_mm=acq.noise_mm,
        z_offset=acq.z_offset,
        seed=acq.seed,
    )


__all__ = [
    "SimulatedSeries",
    "simulate_case",
    "working_sample",
    "acquired_labels",
    "acquired_case",
    "thick_slice_taps",
    "with_thickness",
]
