"""Which per-scan files a run writes (``--outputs``)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class OutputFormat(StrEnum):
    """Per-scan result formats. The CSV tables are always written; ``csv`` may be named for clarity."""

    CSV = "csv"
    NIFTI = "nifti"
    SEG = "seg"
    QC = "qc"


def parse_formats(values: Iterable[str]) -> tuple[OutputFormat, ...]:
    """Validate format names (``"csv,nifti"`` tokens); always includes ``csv``; sorted, unique."""
    formats = {OutputFormat.CSV}
    for value in values:
        for token in str(value).split(","):
            token = token.strip().lower()
            if not token:
                continue
            try:
                formats.add(OutputFormat(token))
            except ValueError:
                allowed = ", ".join(f.value for f in OutputFormat)
                raise ValueError(f"unknown output format '{token}'; allowed: {allowed}") from None
    return tuple(sorted(formats, key=list(OutputFormat).index))
