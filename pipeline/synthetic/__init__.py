"""Synthetic DICOM: write numpy HU volumes as CT series the way scanners and archives do.

Used by the test suite (every ingestion edge case, with exact expected geometry and HU) and by
the demo cohort. Everything is deterministic: UIDs derive from the patient/study/series values,
random file names and noise from explicit seeds.

Main entry points
-----------------
:func:`write_ct_series`
    Classic one-file-per-slice CT series: per-slice rescale, padding, gantry tilt, gaps,
    duplicated positions, shuffled or UID file names, RLE / JPEG-LS / JPEG 2000 lossless.
:func:`write_enhanced_ct`
    Enhanced CT multi-frame file (functional groups).
:func:`write_localizer`, :func:`write_reformat`, :func:`write_secondary_capture`, :func:`write_dose_report`
    The non-analysable neighbours of a CT series.
:func:`chest_phantom`
    A small analytic chest phantom in HU with lung and lesion labels (unit tests).
:func:`build_thorax` / :meth:`ThoraxAnatomy.render`, :func:`thorax_phantom`
    A realistic adult thorax (ribs, spine, mediastinum, vessels, airways, CT noise) with
    COVID-19-like lesions of a requested burden and exact labels (:mod:`pipeline.synthetic.thorax`;
    end-to-end tests and ``lunglesion demo``).
"""

from pipeline.synthetic.ct_series import WrittenSeries, slice_frames, write_ct_series, write_enhanced_ct
from pipeline.synthetic.other_objects import (
    write_dose_report,
    write_localizer,
    write_reformat,
    write_secondary_capture,
)
from pipeline.synthetic.phantom import ChestPhantom, chest_phantom
from pipeline.synthetic.spec import (
    FileNaming,
    Geometry,
    Patient,
    PixelEncoding,
    Quirks,
    Series,
    Study,
    deterministic_uid,
)
from pipeline.synthetic.thorax import ThoraxAnatomy, ThoraxPhantom, ThoraxSpec, build_thorax, thorax_phantom

__all__ = [
    "ChestPhantom",
    "FileNaming",
    "Geometry",
    "Patient",
    "PixelEncoding",
    "Quirks",
    "Series",
    "Study",
    "ThoraxAnatomy",
    "ThoraxPhantom",
    "ThoraxSpec",
    "WrittenSeries",
    "build_thorax",
    "chest_phantom",
    "deterministic_uid",
    "slice_frames",
    "thorax_phantom",
    "write_ct_series",
    "write_dose_report",
    "write_enhanced_ct",
    "write_localizer",
    "write_reformat",
    "write_secondary_capture",
]
