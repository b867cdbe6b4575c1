"""Reference label files in users' conventions: a label map and the folder layouts that are understood.

A label map (JSON or YAML) names which values of a label file mean what::

    right_lung: [1]
    left_lung: [2]
    lung: []            # lung without a side: split into right/left automatically
    ggo: [3]
    consolidation: [4]
    ignore: [255]       # not scored, and left out of the lesion loss when fine-tuning (unknown
                        # lesion class); the lung head learns these voxels as not lung

In one label file a lesion value replaces the lung value of its voxel. With ``right_lung`` /
``left_lung`` values in the map (with or without ``lung``), lesion voxels connected to labelled
lung are lung on the side of the nearest lung voxel; with only an unsided ``lung`` value, lesion
voxels join the lung before it is split into right/left.

Folder layouts (``find_cases``):

* ``<case>_ct.nii.gz`` + ``<case>_lungs.nii.gz`` + ``<case>_lesions.nii.gz`` (lunglesion's own
  convention: lungs 1/2, lesions 1/2), with an optional ``<case>_ignore.nii.gz`` (non-zero =
  not scored, e.g. a real abnormality the reference does not describe), or
* ``<case>_ct.nii.gz`` + ``<case>_label.nii.gz`` (one file, values per the label map), or
* ``images/<case>.nii.gz`` + ``labels/<case>.nii.gz`` (one file, values per the label map).

``.nii``, ``.nrrd`` and ``.mha`` work as well as ``.nii.gz``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from pipeline.errors import ErrorCode, LunglesionError
from segmentation.grid import format_values, grid_mismatch
from segmentation.result import LesionLabel, LungLabel

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


class Meaning(StrEnum):
    RIGHT_LUNG = "right_lung"
    LEFT_LUNG = "left_lung"
    LUNG = "lung"
    GGO = "ggo"
    CONSOLIDATION = "consolidation"
    IGNORE = "ignore"


@dataclass(frozen=True)
class LabelMap:
    """Label values of a user's file for each meaning."""

    values: dict[Meaning, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> LabelMap:
        """Read a JSON or YAML label map; unknown names and non-integer values are errors."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except FileNotFoundError as exc:
            raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"label map {path} not found") from exc
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise LunglesionError(ErrorCode.CONFIG_INVALID, f"label map {path} is not valid JSON/YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise LunglesionError(ErrorCode.CONFIG_INVALID, f"label map {path}: expected a mapping of names to values")
        values: dict[Meaning, tuple[int, ...]] = {}
        allowed = ", ".join(m.value for m in Meaning)
        for key, raw in data.items():
            try:
                meaning = Meaning(str(key))
            except ValueError:
                raise LunglesionError(
                    ErrorCode.CONFIG_INVALID, f"label map {path}: unknown name '{key}' (allowed: {allowed})"
                ) from None
            items = raw if isinstance(raw, list) else [raw]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                raise LunglesionError(
                    ErrorCode.CONFIG_INVALID, f"label map {path}: '{key}' must be an integer or a list of integers"
                )
            values[meaning] = tuple(int(v) for v in items)
        if not any(values.values()):
            raise LunglesionError(ErrorCode.CONFIG_INVALID, f"label map {path} maps no label values")
        meaning_of: dict[int, Meaning] = {}
        for meaning, items in values.items():
            for value in items:
                other = meaning_of.setdefault(value, meaning)
                if other is not meaning:
                    raise LunglesionError(
                        ErrorCode.CONFIG_INVALID,
                        f"label map {path}: value {value} is given two meanings "
                        f"('{other.value}' and '{meaning.value}')",
                    )
        return cls(values)

    def has(self, meaning: Meaning) -> bool:
        return bool(self.values.get(meaning))

    def mask(self, array: np.ndarray, meaning: Meaning) -> np.ndarray:
        return np.isin(array, self.values.get(meaning, ()))


@dataclass(frozen=True)
class ReferenceCase:
    """One image and its reference label file(s)."""

    name: str
    image: Path
    lungs: Path | None = None
    lesions: Path | None = None
    label: Path | None = None
    ignore: Path | None = None
    """Optional mask of voxels left out of every score (lunglesion layout only)."""


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def find_cases(folder: Path) -> list[ReferenceCase]:
    """Image/label pairs in ``folder`` (layouts in the module docstring), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LunglesionError(ErrorCode.INPUT_NOT_FOUND, f"{folder} is not a folder")
    cases: list[ReferenceCase] = []
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        for image in sorted((folder / "images").iterdir()):
            if not image.name.endswith(SUFFIXES):
                continue
            label = _find(folder / "labels", _stem(image))
            if label is not None:
                cases.append(ReferenceCase(_stem(image), image, label=label))
        return cases
    for image in sorted(folder.iterdir()):
        stem = _stem(image)
        if not (image.name.endswith(SUFFIXES) and stem.endswith("_ct")):
            continue
        base = stem[: -len("_ct")]
        cases.append(
            ReferenceCase(
                base,
                image,
                lungs=_find(folder, f"{base}_lungs"),
                lesions=_find(folder, f"{base}_lesions"),
                label=_find(folder, f"{base}_label"),
                ignore=_find(folder, f"{base}_ignore"),
            )
        )
    return [c for c in cases if c.lungs or c.lesions or c.label]


def check_same_grid(label: sitk.Image, image: sitk.Image, *, name: str) -> None:
    """Raise ``LABEL_GRID_MISMATCH`` unless ``label`` lies on ``image``'s voxel grid.

    Size must be equal; spacing, origin and direction equal up to what NIfTI's float32
    header storage changes (:func:`segmentation.grid.grid_mismatch`). A label flipped or
    cropped relative to its image would otherwise be scored (or learnt) voxel by voxel against
    the wrong anatomy.
    """
    if label.GetDimension() != 3 or image.GetDimension() != 3:
        raise LunglesionError(
            ErrorCode.LABEL_GRID_MISMATCH,
            f"{name}: expected 3-D image and label volumes, got {image.GetDimension()}-D and {label.GetDimension()}-D",
        )
    mismatch = grid_mismatch(label, image)
    if mismatch is not None:
        what, got, expected = mismatch
        raise LunglesionError(
            ErrorCode.LABEL_GRID_MISMATCH,
            f"{name}: the label's {what} {format_values(got)} differs from its image's {format_values(expected)}; "
            "write labels on the image's grid (same size, spacing, origin and direction)",
        )


def _read_label(path: Path, grid: sitk.Image | None) -> sitk.Image:
    label = sitk.ReadImage(str(path))
    if grid is not None:
        check_same_grid(label, grid, name=path.name)
    return label


def read_reference(
    case: ReferenceCase, label_map: LabelMap | None, *, grid: sitk.Image | None = None
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Reference lungs (LungLabel), lesions (LesionLabel) and an ignore mask, as arrays in the image's order.

    Unsided lung (``lung`` in the label map) is split into right/left with the classical split.
    Returns ``None`` for a structure the reference does not describe. With ``grid`` (the case's
    image), every label file is checked to lie on it (:func:`check_same_grid`).
    """
    lungs = lesions = None
    ignore: np.ndarray | None = None
    if case.lungs is not None:
        lungs = sitk.GetArrayFromImage(_read_label(case.lungs, grid)).astype(np.uint8)
        if not lungs.any():
            raise LunglesionError(
                ErrorCode.CONFIG_INVALID, f"{case.lungs.name}: the lung reference is empty (every voxel is 0)"
            )
    if case.lesions is not None:
        lesions = sitk.GetArrayFromImage(_read_label(case.lesions, grid)).astype(np.uint8)
    if lungs is not None and lesions is not None and lungs.shape != lesions.shape:
        raise LunglesionError(
            ErrorCode.LABEL_GRID_MISMATCH,
            f"{case.name}: the lung and lesion label files have different sizes ({lungs.shape} and {lesions.shape})",
        )
    if case.label is not None:
        if label_map is None:
            raise LunglesionError(
                ErrorCode.CONFIG_INVALID,
                f"{case.label.name}: a single label file needs --label-map to say what values mean",
            )
        label_image = _read_label(case.label, grid)
        array = sitk.GetArrayFromImage(label_image)
        if label_map.has(Meaning.RIGHT_LUNG) or label_map.has(Meaning.LEFT_LUNG) or label_map.has(Meaning.LUNG):
            lungs = np.zeros(array.shape, np.uint8)
            lungs[label_map.mask(array, Meaning.RIGHT_LUNG)] = LungLabel.RIGHT_LUNG
            lungs[label_map.mask(array, Meaning.LEFT_LUNG)] = LungLabel.LEFT_LUNG
            unsided = label_map.mask(array, Meaning.LUNG)
            lesion_any = label_map.mask(array, Meaning.GGO) | label_map.mask(array, Meaning.CONSOLIDATION)
            sided = label_map.has(Meaning.RIGHT_LUNG) or label_map.has(Meaning.LEFT_LUNG)
            if not sided:
                # Lesions drawn instead of (not on top of) an unsided lung label are lung too.
                unsided |= lesion_any
            if unsided.any():
                lungs[unsided] = _split_unsided(unsided, label_image)
            if sided:
                # In one label file a lesion voxel carries its lesion value instead of its lung's:
                # it is lung all the same, on the side of the nearest sided lung voxel.
                _lesions_into_sided_lungs(lungs, lesion_any, spacing_zyx=tuple(reversed(label_image.GetSpacing())))
            if not lungs.any():
                present = np.unique(array)
                raise LunglesionError(
                    ErrorCode.CONFIG_INVALID,
                    f"{case.label.name}: no voxel carries a lung value of the label map (values in the file: "
                    f"{', '.join(str(v) for v in present[:12])}{', ...' if present.size > 12 else ''}); "
                    "check the label map against the label file",
                )
        if label_map.has(Meaning.GGO) or label_map.has(Meaning.CONSOLIDATION):
            lesions = np.zeros(array.shape, np.uint8)
            lesions[label_map.mask(array, Meaning.GGO)] = LesionLabel.GGO
            lesions[label_map.mask(array, Meaning.CONSOLIDATION)] = LesionLabel.CONSOLIDATION
        ignore = label_map.mask(array, Meaning.IGNORE)
    if ignore is None:
        shape = (lungs if lungs is not None else lesions).shape  # type: ignore[union-attr]
        ignore = np.zeros(shape, bool)
    if case.ignore is not None:
        extra = sitk.GetArrayFromImage(_read_label(case.ignore, grid))
        if extra.shape != ignore.shape:
            raise LunglesionError(
                ErrorCode.CONFIG_INVALID,
                f"{case.ignore.name}: shape {extra.shape} differs from the reference's {ignore.shape}",
            )
        ignore = ignore | (extra > 0)
    return lungs, lesions, ignore


def _lesions_into_sided_lungs(lungs: np.ndarray, lesion_any: np.ndarray, *, spacing_zyx: tuple[float, ...]) -> None:
    """Give lesion voxels without a lung label the side of the nearest lung voxel (in place).

    Only lesion regions that touch labelled lung are lung (a lesion drawn in place of lung is
    connected to it); a stray lesion voxel away from the lungs stays outside. Distances are in
    millimetres, computed in the bounding box of those regions plus a margin (memory follows the
    lesions, not the scan). A lung whose every voxel is labelled lesion has no lung voxel left to
    say which side it is; its lesion then joins the other lung (the nearest), which is why a map
    with an unsided ``lung`` value, or separate ``<case>_lungs`` / ``<case>_lesions`` files, is the
    safer layout for whole consolidated lungs.
    """
    from scipy import ndimage as ndi

    lesion_only = lesion_any & (lungs == 0)
    if not lesion_only.any() or not lungs.any():
        return
    cube = np.ones((3, 3, 3), bool)
    regions, n = ndi.label(lesion_only, structure=cube)
    touching = np.unique(regions[ndi.binary_dilation(lungs > 0, structure=cube) & lesion_only])
    attached = np.isin(regions, touching[touching > 0])
    if not attached.any():
        return
    margin = 8
    box = tuple(
        slice(max(0, s.start - margin), min(size, s.stop + margin))
        for s, size in zip(ndi.find_objects(attached.astype(np.uint8))[0], lungs.shape, strict=True)
    )
    sub_lungs = lungs[box]
    indices = ndi.distance_transform_edt(
        sub_lungs == 0, sampling=spacing_zyx, return_distances=False, return_indices=True
    )
    where = attached[box]
    sub_lungs[where] = sub_lungs[tuple(axis[where] for axis in indices)]


def _split_unsided(mask: np.ndarray, reference: sitk.Image) -> np.ndarray:
    from segmentation.classical import split_left_right
    from segmentation.grid import Canonical

    canon = Canonical.of(reference)
    sides = split_left_right(np.ascontiguousarray(canon.forward(mask)), canon.spacing_zyx)
    return np.ascontiguousarray(canon.backward(sides))[mask]
