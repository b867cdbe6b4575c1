"""Fingerprints that decide whether a finished scan can be reused on a rerun."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from pipeline.config import Settings

#: Settings sections that change a scan's own results. Timepoint rules and output
#: formats are not here: tables are rebuilt at the end of every run, and missing output
#: formats are detected separately from the done-marker.
PER_SCAN_SECTIONS = ("selection", "geometry", "hu", "segmentation", "metrics")
#: Keys inside those sections that do not decide whether a finished scan is reused: where the
#: model file lies and how a model is *trained* (the model itself is in the fingerprint by its
#: SHA-256), CPU threads, and the requested device (``auto`` means CPU on one machine and CUDA
#: on another; each scan's record says which device computed it).
IGNORED_KEYS = (
    ("segmentation", "weights"),
    ("segmentation", "training"),
    ("segmentation", "threads"),
    ("segmentation", "device"),
)


def input_fingerprint(files: Iterable[Path]) -> str:
    """SHA-256 over (absolute path, size, modification time in ns) of every input file.

    Changing, adding, removing or touching a file of the series changes the fingerprint.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(f).resolve() for f in files):
        try:
            stat = os.stat(path)
            entry = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        except OSError:
            entry = f"{path}\0missing\n"
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def scan_config_hash(settings: Settings) -> str:
    """SHA-256 of the settings sections that influence per-scan results."""
    dumped = settings.model_dump(mode="json")
    relevant = {section: dumped[section] for section in PER_SCAN_SECTIONS}
    for section, key in IGNORED_KEYS:
        relevant[section].pop(key, None)
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
