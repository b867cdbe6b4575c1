"""DICOM SOP classes and modalities that decide what kind of object a file holds.

These are facts of the DICOM standard (PS3.4 Annex B), not tunables, so they live in code.
"""

from __future__ import annotations

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.2"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
"""The SOP class of a DICOMDIR file."""

#: Multi-frame classes whose frames are described by functional groups.
FUNCTIONAL_GROUP_CLASSES = frozenset(
    {
        ENHANCED_CT_IMAGE_STORAGE,
        LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE,
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
        "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET
        "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
    }
)

#: Secondary capture classes (screenshots, scanned documents, dose screens).
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)

#: Exact non-image classes (segmentations, RT objects, raw data, registrations, ...).
_NON_IMAGE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation
        "1.2.840.10008.5.1.4.1.1.66.5",  # Surface Segmentation
        "1.2.840.10008.5.1.4.1.1.66",  # Raw Data
        "1.2.840.10008.5.1.4.1.1.66.1",  # Spatial Registration
        "1.2.840.10008.5.1.4.1.1.66.2",  # Spatial Fiducials
        "1.2.840.10008.5.1.4.1.1.66.3",  # Deformable Spatial Registration
        "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose
        "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set
        "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan
        "1.2.840.10008.5.1.4.1.1.481.8",  # RT Ion Plan
        MEDIA_STORAGE_DIRECTORY,
    }
)

#: Prefixes of non-image class families: structured reports (incl. dose SR), presentation
#: states, encapsulated documents (PDF, CDA, STL), waveforms.
_NON_IMAGE_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.104.",
    "1.2.840.10008.5.1.4.1.1.9.",
)

#: Modalities of objects that are never images to analyse, whatever their SOP class says.
NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "RTSTRUCT", "RTDOSE", "RTPLAN", "RTRECORD", "SR", "KO", "PR", "REG", "DOC", "PLAN", "FID", "RWV"}
)


def is_non_image(sop_class_uid: str, modality: str) -> bool:
    """Whether the object is not an image to analyse (SEG, RTSTRUCT, SR, dose report, DICOMDIR, ...)."""
    if sop_class_uid in _NON_IMAGE_CLASSES or sop_class_uid.startswith(_NON_IMAGE_PREFIXES):
        return True
    return modality.upper() in NON_IMAGE_MODALITIES


def is_secondary_capture(sop_class_uid: str) -> bool:
    """Whether the object is a secondary capture (screenshot) image."""
    return sop_class_uid in SECONDARY_CAPTURE_CLASSES


def uses_functional_groups(sop_class_uid: str) -> bool:
    """Whether frame geometry sits in Shared/Per-frame Functional Groups (enhanced multi-frame)."""
    return sop_class_uid in FUNCTIONAL_GROUP_CLASSES
