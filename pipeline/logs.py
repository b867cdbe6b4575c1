"""Logging set-up: one line per event, identifiers only on request.

Code that wants to mention a patient passes it out of band::

    log.info("scan %s: loaded %d slices", scan_id, n, extra={"phi": {"patient": patient_id}})

The formatter appends ``[patient=...]`` only when the user gave ``--log-phi``; by
default the message (which must not itself contain identifiers) is all that is written.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

#: Third-party loggers that are silenced below ERROR.
_QUIET_LIBRARIES = ("pydicom",)

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class PhiAwareFormatter(logging.Formatter):
    """Formats records, appending their ``phi`` mapping only when allowed."""

    def __init__(self, *, show_phi: bool) -> None:
        super().__init__(_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
        self.show_phi = show_phi

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        phi: dict[str, Any] | None = getattr(record, "phi", None)
        if self.show_phi and phi:
            details = " ".join(f"{key}={value}" for key, value in sorted(phi.items()))
            text = f"{text} [{details}]"
        return text


def configure_logging(*, level: str = "INFO", show_phi: bool = False) -> None:
    """Send log records of all lunglesion packages to stderr (called once by the CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PhiAwareFormatter(show_phi=show_phi))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in ("pipeline", "segmentation", "metrics"):
        logging.getLogger(name).setLevel(level.upper())
    # pydicom logs a warning for every odd value of every odd file (invalid UIDs, wrong VR lengths)
    # and may echo element values; ingestion reports what matters through its own error codes.
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
