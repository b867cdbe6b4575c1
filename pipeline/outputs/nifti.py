"""Masks as NIfTI on the original CT grid, named BIDS-derivatives style, with a label table."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import SimpleITK as sitk

from pipeline.io.atomic import atomic_path, write_text_atomic
from pipeline.outputs.labelmap import COMBINED_LABELS, combined_image
from segmentation.result import LungSegmentation

DSEG_TSV = "dseg.tsv"


def bids_stem(*, subject: str, session: str, acquisition: str) -> str:
    """``sub-<subject>_ses-<session>_acq-<acquisition>``; the parts must already be safe labels.

    BIDS labels are alphanumeric, so ``_``, ``-`` and ``.`` are removed from each part.
    """
    parts = [("sub", subject), ("ses", session), ("acq", acquisition)]
    cleaned = [f"{key}-{''.join(ch for ch in value if ch.isalnum()) or 'x'}" for key, value in parts]
    return "_".join(cleaned)


def mask_path(folder: Path, stem: str) -> Path:
    """Where :func:`write_nifti_mask` puts the label map of the scan named ``stem``."""
    return Path(folder) / f"{stem}_desc-lunglesion_dseg.nii.gz"


def write_label_table(folder: Path, *, writer_tag: str = "") -> Path:
    """Write ``dseg.tsv`` (index, name, abbreviation, color) into ``folder``; return its path.

    Every scan's mask writer rewrites this shared file; ``writer_tag`` (the scan's file stem)
    names its temporary file, so that a sharded run's clean-up of other writers' leftovers
    can tell it belongs to a scan being written.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["index", "name", "abbreviation", "color"])
    for label in COMBINED_LABELS:
        writer.writerow([label.index, label.name, label.abbreviation, label.color])
    path = Path(folder) / DSEG_TSV
    write_text_atomic(path, buffer.getvalue(), tag=writer_tag)
    return path


def write_nifti_mask(segmentation: LungSegmentation, *, folder: Path, stem: str) -> Path:
    """Write the combined lung/lesion label map as ``<stem>_desc-lunglesion_dseg.nii.gz``.

    The file is on the CT's grid (SimpleITK converts the LPS geometry to NIfTI's RAS
    qform/sform), so it opens aligned over the CT in 3D Slicer or ITK-SNAP. A
    ``dseg.tsv`` with the label table is written beside it.
    """
    folder = Path(folder)
    destination = mask_path(folder, stem)
    with atomic_path(destination) as tmp:
        sitk.WriteImage(combined_image(segmentation), str(tmp), useCompression=True)
    write_label_table(folder, writer_tag=stem)
    return destination
