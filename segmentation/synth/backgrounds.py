"""Real chest CT backgrounds from ``../shared/data`` (or a ``--data-root``) and their classical lung masks.

Nothing is copied into the repository: volumes are read where the data sets were unpacked,
and the derived lung masks go to the training cache directory.

Roles (see ``segmentation/MODEL_CARD.md``):

* ``train``: lesions are synthesised into these for training;
* ``chest``: the two complete real chest CTs; one is held out of training (``holdout``) and the
  synthetic validation cases are built from it, the other is a training background;
* ``check``: real-data checks only (CIP reference lung mask, the LIDC-IDRI-0002 GGO nodule);
* ``extra``: training backgrounds used only where ``segmentation.training.extra_backgrounds``
  names them (sub-volumes cut around one lung, whose masks come from :mod:`segmentation.synth.crops`).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segmentation.classical import DEFAULT_PARAMETERS, segment_lungs
from segmentation.grid import Canonical, canonical_array
from segmentation.synth.crops import CROP_MASK_VERSION, crop_lungs, unknown_dense
from segmentation.synth.targets import Targets

log = logging.getLogger(__name__)

#: Bump when the classical lung-mask algorithm changes (invalidates cached masks).
MASK_VERSION = "classical-1"


class Role(StrEnum):
    TRAIN = "train"
    CHEST = "chest"
    CHECK = "check"
    EXTRA = "extra"


@dataclass(frozen=True)
class Finding:
    """A real abnormality of a background, marked by the developers as a sphere in patient coordinates.

    The reference of a background says "no lesion" everywhere its synthetic lesions are not,
    which is wrong where the patient has a real one. A finding is excluded from the lesion loss
    when the background is used for training and from scoring (lungs and lesions) in the
    validation cases built on it.
    """

    description: str
    centre_lps_mm: tuple[float, float, float]
    radius_mm: float
    since: Targets = Targets.OPACITY
    """The first target rule that declares it: a finding located after a model was trained is
    declared for the later rule only, so that the earlier rule still reproduces that model."""


@dataclass(frozen=True)
class BackgroundSource:
    """Where a real background lives inside a data set and what it is used for."""

    name: str
    dataset: str
    relative: str
    role: Role
    nodules: str | None = None
    """Optional label file (relative path) of real nodules: excluded from the lesion loss."""
    findings: tuple[Finding, ...] = ()
    """Real abnormalities without a label file (see :class:`Finding`)."""
    weight: float = 1.0
    """Relative number of synthetic cases built from this background."""
    crop_side: int | None = None
    """:class:`~segmentation.result.LungLabel` of the one lung of a sub-volume cut around it (no
    body outline): its mask is :func:`~segmentation.synth.crops.crop_lungs`, not the classical one."""
    unknown_dense_hu: float | None = None
    """Lung at least this dense (:func:`~segmentation.synth.crops.unknown_dense`) is left out of the lesion loss."""


SOURCES: tuple[BackgroundSource, ...] = (
    BackgroundSource(
        "popi",
        "popi-4dct-phase00-itkelastix",
        "dicom_00",
        Role.CHEST,
        # The nodule its SOURCE.txt mentions, looked at on axial and coronal overlays (MODEL_CARD.md,
        # "Known limitations"): median -12 HU, farthest voxel 15.6 mm from this centre, + 5 mm.
        findings=(Finding("solid nodule, right lung (about 2 cm)", (-85.9, 82.1, -8.5), 21.0, Targets.VISIBLE),),
        weight=1.0,
    ),
    BackgroundSource(
        "lidc-0001",
        "lidc-3slabs-nodule-outlines",
        "labels/LIDC-IDRI-0001_ct.nii.gz",
        Role.TRAIN,
        nodules="labels/LIDC-IDRI-0001_nreaders.nii.gz",
        weight=0.25,
    ),
    BackgroundSource(
        "lidc-0003",
        "lidc-3slabs-nodule-outlines",
        "labels/LIDC-IDRI-0003_ct.nii.gz",
        Role.TRAIN,
        nodules="labels/LIDC-IDRI-0003_nreaders.nii.gz",
        weight=0.25,
    ),
    BackgroundSource("cip-2sl", "cip-chest-imaging-platform", "simple_dicom", Role.TRAIN, weight=0.08),
    BackgroundSource("cip-crop-2sl", "cip-chest-imaging-platform", "crop_ct_2slices.nrrd", Role.TRAIN, weight=0.08),
    BackgroundSource(
        "dlwpt",
        "dlwpt-chest-ct-dicom",
        "2-LUNG_3.0_B70f-04083",
        Role.CHEST,
        # Looked at on the image (MODEL_CARD.md, "Real findings in the held-out chest"): centre =
        # centroid of the lung region whose 4 mm-smoothed HU exceeds -650 HU around the mass,
        # radius = its largest distance from that centre (15.2 mm) + 5 mm for spicules and halo.
        findings=(
            Finding("spiculated mass, right lung, against the heart (about 2 cm)", (-81.3, -190.6, -191.4), 20.0),
        ),
        weight=1.0,
    ),
    # Radiomics-phantom NSCLC sub-volumes, each cut around a tumour in one lung (MODEL_CARD.md, "Real
    # CT checks"). pat_1 is left out: a collapse behind its tumour makes its lung boundary ambiguous.
    *(
        BackgroundSource(
            f"nsclc-{n}",
            "radiomics-phantom-nsclc-gtv",
            f"labels/pat_{n}_ct.nii.gz",
            Role.EXTRA,
            nodules=f"labels/pat_{n}_labels.nii.gz",
            weight=0.15,
            crop_side=side,
            unknown_dense_hu=-650.0,
        )
        for n, side in ((2, 1), (3, 2), (4, 2))
    ),
    BackgroundSource("cip-64", "cip-chest-imaging-platform", "ct-64.nrrd", Role.CHECK),
    # Its classical mask cuts dense dependent lung out (R231 includes it): a check, not a training background.
    BackgroundSource("lungmask-2sl", "lungmask-testdata", "testdata", Role.CHECK),
    BackgroundSource(
        "lidc-0002",
        "lidc-3slabs-nodule-outlines",
        "labels/LIDC-IDRI-0002_ct.nii.gz",
        Role.CHECK,
        nodules="labels/LIDC-IDRI-0002_nreaders.nii.gz",
    ),
)


#: The complete real chest CTs; exactly one of them is held out of training.
CHESTS = tuple(s.name for s in SOURCES if s.role is Role.CHEST)
#: Training backgrounds used only when named (``segmentation.training.extra_backgrounds``).
EXTRAS = tuple(s.name for s in SOURCES if s.role is Role.EXTRA)


def training_sources(holdout: str, extra: tuple[str, ...] = ()) -> list[BackgroundSource]:
    """Training backgrounds when ``holdout`` (one of :data:`CHESTS`) is kept for validation.

    ``extra`` names :data:`EXTRAS` to add after the others, in that order.
    """
    if holdout not in CHESTS:
        raise ValueError(f"holdout must be one of {', '.join(CHESTS)}, got {holdout!r}")
    unknown = [name for name in extra if name not in EXTRAS]
    if unknown:
        raise ValueError(f"unknown extra backgrounds {unknown} (known: {', '.join(EXTRAS)})")
    chests = [s for s in SOURCES if s.role is Role.CHEST and s.name != holdout]
    return chests + [s for s in SOURCES if s.role is Role.TRAIN] + [source(name) for name in extra]


def source(name: str) -> BackgroundSource:
    for item in SOURCES:
        if item.name == name:
            return item
    raise KeyError(name)


@dataclass
class Background:
    """A canonical HU volume with its classical lung labels."""

    name: str
    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]
    lungs: np.ndarray
    nodules: np.ndarray
    """Real lesions of unknown class (label files and findings), canonical bool: excluded from the lesion loss."""
    image: sitk.Image
    canonical: Canonical
    findings: np.ndarray | None = None
    """The spheres of :attr:`BackgroundSource.findings`, canonical bool (``None``: the source declares none)."""


class DataRoot:
    """Finds data sets: a ``shared/data`` folder with its ``open`` script, or a folder of unpacked sets."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def dataset(self, name: str) -> Path:
        opener = self.root / "open"
        if opener.is_file():
            out = subprocess.run([str(opener), name], check=True, capture_output=True, text=True, timeout=1800)
            return Path(out.stdout.strip())
        folder = self.root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"data set '{name}' not found under {self.root}")
        return folder


def read_volume(path: Path) -> sitk.Image:
    """A DICOM series folder (GDCM sorts slices by position) or a single volume file."""
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        ids = reader.GetGDCMSeriesIDs(str(path))
        if not ids:
            raise FileNotFoundError(f"no DICOM series in {path}")
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), ids[0]))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def declared_findings(item: BackgroundSource, targets: Targets) -> tuple[Finding, ...]:
    """The findings of ``item`` that rule ``targets`` declares."""
    return tuple(f for f in item.findings if targets.includes(f.since))


def load_background(
    item: BackgroundSource,
    data: DataRoot,
    cache_dir: Path,
    *,
    lung_mask: Callable | None = None,
    targets: Targets = Targets.OPACITY,
) -> Background:
    """Read a background and its lung mask (computed once, cached in ``cache_dir``).

    The mask is ``lung_mask`` where given, :func:`~segmentation.synth.crops.crop_lungs` for a
    crop (:attr:`BackgroundSource.crop_side`), else the classical one.

    ``targets`` decides which of its :attr:`BackgroundSource.findings` are declared.
    """
    folder = data.dataset(item.dataset)
    image = read_volume(folder / item.relative)
    hu, canon = canonical_array(image, dtype=np.float32)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    spacing = canon.spacing_zyx
    nodules = np.zeros(hu.shape, bool)
    if item.nodules:
        label = sitk.ReadImage(str(folder / item.nodules))
        nodules = canon.forward(sitk.GetArrayFromImage(label)) > 0
    digest = hashlib.sha256(hu.tobytes()).hexdigest()[:16]
    version = MASK_VERSION if item.crop_side is None else CROP_MASK_VERSION
    cache = Path(cache_dir) / "backgrounds" / f"{item.name}-{version}-{digest}.npz"
    if cache.exists():
        lungs = np.load(cache)["lungs"]
    else:
        if lung_mask is not None:
            lungs = lung_mask(hu, spacing)
        elif item.crop_side is not None:
            lungs = crop_lungs(hu, spacing, side=item.crop_side, lesion=nodules)
        else:
            lungs = _classical(hu, spacing)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, lungs=lungs)
    if item.unknown_dense_hu is not None:
        nodules = nodules | unknown_dense(hu, spacing, lungs, threshold_hu=item.unknown_dense_hu)
    findings = None
    declared = declared_findings(item, targets)
    if declared:
        findings = np.ascontiguousarray(canon.forward(findings_mask(image, declared)))
        nodules = nodules | findings
    return Background(item.name, hu, spacing, lungs, np.ascontiguousarray(nodules), image, canon, findings)


def findings_mask(image: sitk.Image, findings: tuple[Finding, ...]) -> np.ndarray:
    """Voxels of ``image`` (SimpleITK (z, y, x) array order) whose centre lies inside one of the spheres."""
    size = image.GetSize()
    origin = np.asarray(image.GetOrigin())
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    mask = np.zeros(size[::-1], bool)
    for finding in findings:
        centre = np.asarray(finding.centre_lps_mm, float)
        # Bounding box in index space: the sphere's extent along each index axis.
        centre_index = np.linalg.solve(direction * spacing, centre - origin)
        half = finding.radius_mm / spacing + 1
        lo = np.clip(np.floor(centre_index - half).astype(int), 0, np.asarray(size) - 1)
        hi = np.clip(np.ceil(centre_index + half).astype(int) + 1, 0, np.asarray(size))
        if np.any(hi <= lo):
            continue
        grids = np.meshgrid(*(np.arange(lo[a], hi[a]) for a in range(3)), indexing="ij")  # x, y, z index
        index = np.stack(grids, axis=-1).reshape(-1, 3).astype(float)
        points = origin + (index * spacing) @ direction.T
        inside = (np.linalg.norm(points - centre, axis=1) <= finding.radius_mm).reshape(grids[0].shape)
        mask[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] |= inside.transpose(2, 1, 0)
    return mask


def _classical(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    return segment_lungs(hu, spacing, DEFAULT_PARAMETERS).lungs
