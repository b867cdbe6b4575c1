"""Calibrating a trained model's lesion threshold on development cases (part of ``lunglesion train``).

A segmentation network trained with cross-entropy + Dice is not calibrated at lesion borders:
where a ground-glass opacity fades into normal lung, P(lesion) sits below one half over a band
of voxels the reference counts as lesion, so thresholding at 0.5 under-measures the lesion
volume. The threshold is therefore chosen after training, on *development* cases: the synthetic
validation suite rendered on a training background (new lesions and acquisitions on a chest the
network has seen), never on the held-out background whose cases report the model's accuracy.

The network runs once per case; every candidate threshold is then applied to the same
probability fields (:func:`segmentation.inference.decide`), and the one with the smallest mean
absolute lesion-fraction error over the cases is kept (ties: the one closest to 0.5).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from pipeline.errors import ErrorCode, LunglesionError
from segmentation.labelmap import find_cases, read_reference
from segmentation.postprocess import Thresholds

if TYPE_CHECKING:
    from segmentation.inference import LoadedModel

log = logging.getLogger(__name__)

#: Lesion thresholds tried (P(GGO) + P(consolidation) above it is lesion).
CANDIDATES: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


@dataclass(frozen=True)
class Calibration:
    """The chosen thresholds and what each candidate scored."""

    thresholds: Thresholds
    cases: tuple[str, ...]
    mean_abs_error_pp: dict[float, float]
    """Candidate lesion threshold -> mean |lesion-fraction error| (percentage points) over the cases."""
    mean_lesion_dice: dict[float, float]

    def to_dict(self) -> dict:
        return {
            "chosen": self.thresholds.to_dict(),
            "cases": list(self.cases),
            "candidates": [
                {
                    "lesion_threshold": t,
                    "mean_abs_fraction_error_pp": round(e, 4),
                    "mean_lesion_dice": round(self.mean_lesion_dice[t], 4),
                }
                for t, e in sorted(self.mean_abs_error_pp.items())
            ],
        }


def _fraction(lungs: np.ndarray, lesions: np.ndarray) -> float:
    n = int(np.count_nonzero(lungs))
    return 100.0 * int(np.count_nonzero(lesions)) / n if n else 0.0


def calibrate_lesion_threshold(
    model: LoadedModel,
    folder: Path,
    *,
    batch_slices: int,
    min_component_fraction: float,
    min_lesion_voxels: int,
    candidates: tuple[float, ...] = CANDIDATES,
) -> Calibration:
    """Choose the lesion threshold of ``model`` on the development cases in ``folder``.

    Parameters
    ----------
    model
        The trained network with its description (its lung threshold is kept).
    folder
        Development cases in the validation layout (``<case>_ct.nii.gz``, ``_lungs.nii.gz``,
        ``_lesions.nii.gz``, ``cases.json`` and, where a case has one, ``_ignore.nii.gz``: voxels
        left out of the error, as :func:`segmentation.evaluation.compare` leaves them out).
    batch_slices, min_component_fraction, min_lesion_voxels
        The ``segmentation`` settings scans are segmented with, so the calibration decides on
        what a scan gets.
    candidates
        Lesion thresholds to try.

    Returns
    -------
    Calibration
        The chosen thresholds and every candidate's mean error and lesion Dice.
    """
    from segmentation.evaluation import dice
    from segmentation.inference import decide, working_fields

    names = [record["case"] for record in json.loads((Path(folder) / "cases.json").read_text())]
    cases = {case.name: case for case in find_cases(Path(folder))}
    missing = [name for name in names if name not in cases or cases[name].lungs is None or cases[name].lesions is None]
    if missing:
        raise LunglesionError(
            ErrorCode.INPUT_NOT_FOUND,
            f"{folder}: no image with lung and lesion references for {', '.join(missing)} of cases.json",
        )
    errors: dict[float, list[float]] = {t: [] for t in candidates}
    dices: dict[float, list[float]] = {t: [] for t in candidates}
    lung_threshold = model.description.thresholds.lung
    for name in names:
        image = sitk.ReadImage(str(cases[name].image))
        canon, grid, fields, outside = working_fields(image, model, batch_slices=batch_slices)
        # The evaluation's reader: label files checked against the image's grid, and the voxels of
        # the case's ignore file (real findings, unseen GGO) left out, as in `lunglesion evaluate`.
        ref_lungs, ref_lesions, ignore = read_reference(cases[name], None, grid=image)
        scored = canon.forward(~ignore)
        ref_lungs = np.where(scored, canon.forward(ref_lungs), 0)
        ref_lesions = np.where(scored, canon.forward(ref_lesions), 0)
        true_fraction = _fraction(ref_lungs > 0, ref_lesions > 0)
        for t in candidates:
            lungs, lesions = decide(
                fields,
                outside,
                grid,
                thresholds=Thresholds(lung=lung_threshold, lesion=t),
                min_component_fraction=min_component_fraction,
                min_lesion_voxels=min_lesion_voxels,
            )
            lungs, lesions = (lungs > 0) & scored, (lesions > 0) & scored
            errors[t].append(abs(_fraction(lungs, lesions) - true_fraction))
            if true_fraction > 0:
                dices[t].append(dice(lesions, ref_lesions > 0))
        log.info(
            "calibration case %s: lesion-fraction error %s",
            name,
            " ".join(f"{t:.2f}:{errors[t][-1]:.2f}" for t in candidates),
        )
    mean_error = {t: float(np.mean(v)) for t, v in errors.items()}
    mean_dice = {t: float(np.mean(v)) if v else float("nan") for t, v in dices.items()}
    best = min(candidates, key=lambda t: (round(mean_error[t], 6), abs(t - 0.5)))
    log.info(
        "lesion threshold %.2f (mean |fraction error| %.2f pp at 0.5, %.2f pp chosen)",
        best,
        mean_error.get(0.5, float("nan")),
        mean_error[best],
    )
    return Calibration(
        thresholds=Thresholds(lung=lung_threshold, lesion=best),
        cases=tuple(names),
        mean_abs_error_pp=mean_error,
        mean_lesion_dice=mean_dice,
    )
