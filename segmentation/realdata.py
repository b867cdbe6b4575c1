"""Checks on real CT (``lunglesion evaluate --real-data-checks``): what can be measured without COVID labels in HU.

* CIP ``ct-64`` (4 mm whole chest) against its reference lung label map (left regions 9-11,
  right 12-14, airway/vessel-typed voxels included): Dice per side.
* Lesion fraction on the lesion-free real chest CTs (dlwpt, POPI, CIP): should be ~0. "Lesion-free"
  means free of pneumonia: the dlwpt patient has a spiculated mass (a declared
  :class:`~segmentation.synth.backgrounds.Finding`), so its fraction is also reported outside it.
* LIDC-IDRI-0002: the ground-glass nodule (voxels outlined by >= 1 reader) should be found as GGO (a
  predicted GGO lesion touches it) and covered (at least half of its outline labelled lesion).
* MedSeg's 50 labelled COVID-19 slices mapped to approximate HU: Dice per class (pooled over slices),
  on all of them and on each half of the trainable/check split (:func:`~segmentation.synth.medseg.split_medseg`).
* lungmask's two test slices: lung voxel counts next to lungmask R231's recorded counts, and the
  lesion fraction (their parenchyma is diffusely dense).
* The four radiomics-phantom NSCLC sub-volumes (real lung cancers with a manual gross tumour
  volume, GTV): a tumour is a lesion inside the lung, so its GTV should be lung and lesion, mostly
  consolidation (solid). These are tight crops around the tumour, not a whole field of view.

Each check runs the model and the classical baseline so the two can be compared.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from segmentation.evaluation import dice
from segmentation.result import LungSegmentation
from segmentation.synth.backgrounds import DataRoot, findings_mask, read_volume, source

log = logging.getLogger(__name__)

Segmenter = Callable[[sitk.Image], LungSegmentation]


def _arrays(result: LungSegmentation) -> tuple[np.ndarray, np.ndarray]:
    return sitk.GetArrayFromImage(result.lungs), sitk.GetArrayFromImage(result.lesions)


def _fraction(lungs: np.ndarray, lesions: np.ndarray) -> float:
    n = int((lungs > 0).sum())
    return 100.0 * float((lesions > 0).sum()) / n if n else math.nan


def check_cip(data: DataRoot, segmenters: dict[str, Segmenter]) -> dict:
    folder = data.dataset("cip-chest-imaging-platform")
    image = sitk.ReadImage(str(folder / "ct-64.nrrd"))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd")))
    region = label & 255
    ref_right = (region >= 12) & (region <= 14)
    ref_left = (region >= 9) & (region <= 11)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    out: dict = {"reference_ml": {"right": ref_right.sum() * voxel_ml, "left": ref_left.sum() * voxel_ml}}
    for name, segment in segmenters.items():
        lungs, lesions = _arrays(segment(image))
        out[name] = {
            "dice_right": dice(lungs == 1, ref_right),
            "dice_left": dice(lungs == 2, ref_left),
            "dice_lungs": dice(lungs > 0, ref_right | ref_left),
            "right_ml": float((lungs == 1).sum() * voxel_ml),
            "left_ml": float((lungs == 2).sum() * voxel_ml),
            "lesion_fraction_pct": _fraction(lungs, lesions),
        }
    return out


def check_lesion_free(data: DataRoot, segmenters: dict[str, Segmenter]) -> dict:
    volumes = {
        "dlwpt (held out)": "dlwpt",
        "popi (training background)": "popi",
        "cip-64 (not in training)": "cip-64",
    }
    out: dict = {}
    for label, name in volumes.items():
        item = source(name)
        image = read_volume(data.dataset(item.dataset) / item.relative)
        voxel_ml = float(np.prod(image.GetSpacing())) / 1000
        findings = findings_mask(image, item.findings) if item.findings else None
        out[label] = {}
        for method, segment in segmenters.items():
            lungs, lesions = _arrays(segment(image))
            record = {
                "lung_ml": float((lungs > 0).sum() * voxel_ml),
                "lesion_fraction_pct": _fraction(lungs, lesions),
                "ggo_ml": float((lesions == 1).sum() * voxel_ml),
                "consolidation_ml": float((lesions == 2).sum() * voxel_ml),
            }
            if findings is not None:
                record["lesion_ml_in_findings"] = float(((lesions > 0) & findings).sum() * voxel_ml)
                record["lesion_fraction_outside_findings_pct"] = _fraction(
                    np.where(findings, 0, lungs), np.where(findings, 0, lesions)
                )
            out[label][method] = record
    return out


def check_lidc_ggo(data: DataRoot, segmenters: dict[str, Segmenter]) -> dict:
    """The LIDC-IDRI-0002 ground-glass nodule, read two ways.

    *Found* is the detection reading (as in LUNA16-style scoring, where a candidate inside a
    reference nodule is a hit): a connected predicted lesion touches the readers' outline and is
    mostly GGO there. *Covered* is the segmentation reading: at least half of the outline (voxels
    of >= 1 reader) is lesion, mostly GGO. Lesion components that touch no outline voxel are
    reported as false components.
    """
    folder = data.dataset("lidc-3slabs-nodule-outlines") / "labels"
    image = sitk.ReadImage(str(folder / "LIDC-IDRI-0002_ct.nii.gz"))
    readers = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "LIDC-IDRI-0002_nreaders.nii.gz")))
    hu = sitk.GetArrayFromImage(image)
    nodule = readers >= 1
    consensus = readers >= min(2, int(readers.max()))
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    out: dict = {
        "nodule_ml": float(nodule.sum() * voxel_ml),
        "nodule_consensus_ml": float(consensus.sum() * voxel_ml),
        "nodule_median_hu": float(np.median(hu[nodule])),
    }
    for name, segment in segmenters.items():
        lungs, lesions = _arrays(segment(image))
        in_nodule = lesions[nodule]
        ggo = float((in_nodule == 1).mean())
        cons = float((in_nodule == 2).mean())
        components, n = ndi.label(lesions > 0)
        touching = set(np.unique(components[nodule]).tolist()) - {0}
        outside = (lesions > 0) & ~nodule
        out[name] = {
            "nodule_as_ggo": ggo,
            "nodule_as_consolidation": cons,
            "nodule_consensus_as_ggo": float((lesions[consensus] == 1).mean()),
            "nodule_in_lung": float((lungs[nodule] > 0).mean()),
            "found_as_ggo": bool(touching) and ggo > cons,
            "covered_as_ggo": bool(ggo + cons >= 0.5 and ggo > cons),
            "false_components": n - len(touching),
            "lesion_ml_outside_nodule": float(outside.sum() * voxel_ml),
            "lesion_fraction_pct": _fraction(lungs, lesions),
        }
    return out


@dataclass
class _MedSegCounts:
    """Voxel counts (intersection, predicted, reference) per class and per-slice lesion Dice."""

    sums: dict[str, list[int]] = field(
        default_factory=lambda: {k: [0, 0, 0] for k in ("lesion", "ggo", "consolidation")}
    )
    per_slice: list[float] = field(default_factory=list)
    failed: int = 0
    lesion_in_lung: int = 0
    """Reference lesion voxels inside the predicted lungs (a lesion is lung: the rest was cut out)."""
    in_field: list[int] = field(default_factory=lambda: [0, 0, 0])
    """Lesion intersection, predicted and reference voxels inside :func:`~segmentation.synth.medseg.in_field`."""

    def __add__(self, other: _MedSegCounts) -> _MedSegCounts:
        sums = {k: [a + b for a, b in zip(v, other.sums[k], strict=True)] for k, v in self.sums.items()}
        return _MedSegCounts(
            sums,
            self.per_slice + other.per_slice,
            self.failed + other.failed,
            self.lesion_in_lung + other.lesion_in_lung,
            [a + b for a, b in zip(self.in_field, other.in_field, strict=True)],
        )

    def summary(self) -> dict:
        out: dict = {
            f"dice_{k}_pooled": (2 * v[0] / (v[1] + v[2]) if v[1] + v[2] else math.nan) for k, v in self.sums.items()
        }
        values = [v for v in self.per_slice if not math.isnan(v)]
        out["dice_lesion_median_per_slice"] = float(np.median(values)) if values else math.nan
        out["failed_slices"] = self.failed
        reference = self.sums["lesion"][2]
        out["reference_lesion_in_lung"] = self.lesion_in_lung / reference if reference else math.nan
        inter, pred, ref = self.in_field
        out["reference_lesion_in_field"] = ref / reference if reference else math.nan
        out["dice_lesion_pooled_in_field"] = 2 * inter / (pred + ref) if pred + ref else math.nan
        return out


def _medseg_counts(slices, segment: Segmenter) -> _MedSegCounts:
    from segmentation.synth.medseg import in_field

    counts = _MedSegCounts()
    for item in slices:
        try:
            result = segment(item.image(slices=1))
        except Exception as exc:  # noqa: BLE001 - a slice without detectable lung is counted, not fatal
            log.warning("MedSeg slice %s: %s", item.name, exc)
            counts.failed += 1
            continue
        pred = sitk.GetArrayFromImage(result.lesions)[0]  # same orientation as item.labels
        ref = item.labels
        pred_lesion, ref_lesion = pred > 0, ref > 0
        counts.lesion_in_lung += int((ref_lesion & (sitk.GetArrayViewFromImage(result.lungs)[0] > 0)).sum())
        reachable = in_field(item)
        for k, mask in enumerate((pred_lesion & ref_lesion, pred_lesion, ref_lesion)):
            counts.in_field[k] += int((mask & reachable).sum())
        for key, p, r in (
            ("lesion", pred_lesion, ref_lesion),
            ("ggo", pred == 1, ref == 1),
            ("consolidation", pred == 2, ref == 2),
        ):
            counts.sums[key][0] += int((p & r).sum())
            counts.sums[key][1] += int(p.sum())
            counts.sums[key][2] += int(r.sum())
        counts.per_slice.append(dice(pred_lesion, ref_lesion))
    return counts


def check_medseg(data: DataRoot, segmenters: dict[str, Segmenter]) -> dict:
    """Dice on all 50 slices (top-level keys) and on each half of :func:`~segmentation.synth.medseg.split_medseg`.

    ``check_half`` (slices 32-67) is never trained on; ``trainable_half`` (0-31) is what a model
    trained with ``medseg_share > 0`` has seen, so only the check half measures such a model.
    """
    from segmentation.synth.medseg import load_medseg, split_medseg

    slices = load_medseg(data.dataset("medseg-covid-2d-train"))
    trainable, check = split_medseg(slices)
    out: dict = {"slices": len(slices), "trainable_slices": len(trainable), "check_slices": len(check)}
    for name, segment in segmenters.items():
        seen, unseen = _medseg_counts(trainable, segment), _medseg_counts(check, segment)
        out[name] = {
            **(seen + unseen).summary(),
            "trainable_half": seen.summary(),
            "check_half": unseen.summary(),
        }
    return out


def check_lungmask_slices(data: DataRoot, segmenters: dict[str, Segmenter]) -> dict:
    image = read_volume(data.dataset("lungmask-testdata") / "testdata")
    out: dict = {"lungmask_r231_voxels": {"right": 64752, "left": 36536}}
    for name, segment in segmenters.items():
        try:
            lungs, lesions = _arrays(segment(image))
        except Exception as exc:  # noqa: BLE001
            out[name] = {"error": str(exc)}
            continue
        out[name] = {
            "right": int((lungs == 1).sum()),
            "left": int((lungs == 2).sum()),
            "lesion_fraction_pct": _fraction(lungs, lesions),
        }
    return out


#: Patients of the radiomics-phantom data set (``labels/pat_N_ct.nii.gz`` with ``pat_N_labels.nii.gz``).
NSCLC_PATIENTS = ("pat_1", "pat_2", "pat_3", "pat_4")
#: Share of a GTV labelled lesion for the tumour to count as found (a lesion merely touching the
#: outline, e.g. ground glass beside a part-solid tumour, does not find it).
TUMOUR_FOUND_SHARE = 0.10


def check_nsclc_tumours(data: DataRoot, segmenters: dict[str, Segmenter]) -> dict:
    """Real solid tumours: how much of each manual GTV is found as lung and as lesion.

    *Found*: at least :data:`TUMOUR_FOUND_SHARE` of the GTV is lesion. *Covered*: at least half
    of it is. The lesion outside the GTV is reported, not scored: these patients have real disease
    beyond the outline (post-obstructive collapse, dependent density) that no reference marks.
    """
    folder = data.dataset("radiomics-phantom-nsclc-gtv") / "labels"
    out: dict = {}
    for patient in NSCLC_PATIENTS:
        image = sitk.ReadImage(str(folder / f"{patient}_ct.nii.gz"))
        gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{patient}_labels.nii.gz"))) > 0
        voxel_ml = float(np.prod(image.GetSpacing())) / 1000
        record: dict = {
            "gtv_ml": float(gtv.sum() * voxel_ml),
            "gtv_median_hu": float(np.median(sitk.GetArrayViewFromImage(image)[gtv])),
        }
        for name, segment in segmenters.items():
            try:
                lungs, lesions = _arrays(segment(image))
            except Exception as exc:  # noqa: BLE001 - a crop without detectable lung is reported, not fatal
                record[name] = {"error": str(exc)}
                continue
            in_gtv = lesions[gtv]
            share = float((in_gtv > 0).mean())
            record[name] = {
                "gtv_in_lung": float((lungs[gtv] > 0).mean()),
                "gtv_as_lesion": share,
                "gtv_as_consolidation": float((in_gtv == 2).mean()),
                "gtv_as_ggo": float((in_gtv == 1).mean()),
                "found": share >= TUMOUR_FOUND_SHARE,
                "covered": share >= 0.5,
                "lung_ml": float((lungs > 0).sum() * voxel_ml),
                "lesion_ml_outside_gtv": float(((lesions > 0) & ~gtv).sum() * voxel_ml),
                "ggo_ml_outside_gtv": float(((lesions == 1) & ~gtv).sum() * voxel_ml),
                "consolidation_ml_outside_gtv": float(((lesions == 2) & ~gtv).sum() * voxel_ml),
            }
        out[patient] = record
    for name in segmenters:
        records = [out[p][name] for p in NSCLC_PATIENTS]
        out[name] = {
            "found": sum(bool(r.get("found")) for r in records),
            "covered": sum(bool(r.get("covered")) for r in records),
            "failed": sum("error" in r for r in records),
        }
    return out


def run_real_data_checks(data_root: Path, segmenters: dict[str, Segmenter]) -> dict:
    """All checks; ``segmenters`` maps a name (``model``, ``classical``) to a segment function."""
    data = DataRoot(data_root)
    results = {}
    for name, check in (
        ("cip_lung_dice", check_cip),
        ("lesion_free_fraction", check_lesion_free),
        ("lidc_0002_ggo_nodule", check_lidc_ggo),
        ("medseg_slices", check_medseg),
        ("lungmask_two_slices", check_lungmask_slices),
        ("nsclc_tumours", check_nsclc_tumours),
    ):
        log.info("real-data check %s", name)
        results[name] = check(data, segmenters)
    return results
