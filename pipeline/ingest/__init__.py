"""DICOM and volume-file ingestion in two phases.

1. :func:`index_inputs` reads headers only: it finds every series under the inputs, splits
   series that hold several stacks, validates their geometry, plans the exact output volume
   and applies the selection rules per study (:class:`IndexResult` of :class:`SeriesCandidate`).
2. :func:`load_scan` reads the pixels of one planned candidate and returns a :class:`Scan`
   (int16 HU SimpleITK image with exact LPS geometry, plus metadata).

Names are imported lazily so that ``import pipeline.ingest`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.ingest.candidate import FileIssue, IndexResult, SeriesCandidate, StudyIssue
    from pipeline.ingest.index import index_inputs
    from pipeline.ingest.load import load_scan
    from pipeline.ingest.plan import SourceKind, VolumePlan
    from pipeline.ingest.scan import IngestWarning, Scan, ScanMetadata

_EXPORTS = {
    "index_inputs": "pipeline.ingest.index",
    "load_scan": "pipeline.ingest.load",
    "IndexResult": "pipeline.ingest.candidate",
    "SeriesCandidate": "pipeline.ingest.candidate",
    "FileIssue": "pipeline.ingest.candidate",
    "StudyIssue": "pipeline.ingest.candidate",
    "VolumePlan": "pipeline.ingest.plan",
    "SourceKind": "pipeline.ingest.plan",
    "Scan": "pipeline.ingest.scan",
    "ScanMetadata": "pipeline.ingest.scan",
    "IngestWarning": "pipeline.ingest.scan",
}

__all__ = [
    "FileIssue",
    "IndexResult",
    "IngestWarning",
    "Scan",
    "ScanMetadata",
    "SeriesCandidate",
    "SourceKind",
    "StudyIssue",
    "VolumePlan",
    "index_inputs",
    "load_scan",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline.ingest' has no attribute {name!r}")
