"""Real CT without lung, taught as background everywhere: the negative training samples.

Every training background is a chest, so the network sees the abdomen only in the few slices
below the diaphragm that each chest scan happens to hold. Gas in the colon under the left
hemidiaphragm is then taken for lung, and its faeces for consolidation (``MODEL_CARD.md``,
"Bowel gas at the lung base"). A negative sample is a real CT slab that contains no lung at
all; its cases go through the same simulated acquisitions as the chest cases and have
all-background lung and lesion targets.

The negative slabs are cut *below* the real-data lung-base check, so that check stays on slices
the model never trained on (:data:`NEGATIVE_SOURCES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segmentation.grid import canonical_array
from segmentation.synth.backgrounds import Background, DataRoot, read_volume

#: Case family of the negative cases in the cache index (a ``kind_weights`` key).
NEGATIVE_KIND = "no-lung"


@dataclass(frozen=True)
class NegativeSource:
    """A real CT volume and the run of its slices that holds no lung.

    ``first_slice``/``stop_slice`` index the volume's own third (slice) axis, as stored.
    """

    name: str
    dataset: str
    relative: str
    first_slice: int
    stop_slice: int
    why: str
    """How the slab was checked to hold no lung."""


NEGATIVE_SOURCES: tuple[NegativeSource, ...] = (
    NegativeSource(
        "tseg-abdomen",
        "totalsegmentator-tests",
        "example_ct.nii.gz",
        0,
        82,
        why=(
            "112 slices of 3 mm, pelvis to lung bases, slice index increasing towards the head. "
            "example_ct_sm.nii.gz (the lung-base check) is slices 82-111 of it, voxel for voxel, and "
            "its reference lobes (example_seg.nii.gz) start at slice 101: slices 0-81 end 57 mm below "
            "the lowest reference lung slice and share no slice with the check."
        ),
    ),
)


def negative_source(name: str) -> NegativeSource:
    for item in NEGATIVE_SOURCES:
        if item.name == name:
            return item
    raise KeyError(name)


def load_negative(item: NegativeSource, data: DataRoot) -> Background:
    """The slab of ``item`` as a canonical HU background with empty lung labels."""
    image = read_volume(data.dataset(item.dataset) / item.relative)
    depth = image.GetSize()[2]
    if not 0 <= item.first_slice < item.stop_slice <= depth:
        raise ValueError(
            f"negative source {item.name}: slices {item.first_slice}-{item.stop_slice - 1} "
            f"are outside its {depth}-slice volume"
        )
    slab = image[:, :, item.first_slice : item.stop_slice]
    hu, canon = canonical_array(slab, dtype=np.float32)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    empty = np.zeros(hu.shape, np.uint8)
    return Background(item.name, hu, canon.spacing_zyx, empty, empty.astype(bool), slab, canon)


__all__ = ["NEGATIVE_KIND", "NEGATIVE_SOURCES", "NegativeSource", "load_negative", "negative_source"]
