"""Done-markers: a finished scan's proof that its results match its inputs, config and model.

A scan's ``result.json`` is written first, then ``done.json``; both atomically. A scan
counts as finished only when ``done.json`` exists, parses, and its fingerprint equals the
current one, so a run killed at any moment leaves either a complete scan or one that the
next run recomputes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.io.atomic import write_text_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fingerprint:
    """What a scan's results depend on."""

    input_fingerprint: str
    config_hash: str
    model_sha256: str
    pipeline_version: str
    outputs: tuple[str, ...]
    subject: str
    """The (possibly pseudonymised) subject label used in file names and tables."""


def write_done(path: Path, fingerprint: Fingerprint, *, status: str, finished_at: str) -> None:
    """Write the done-marker (last step of a scan)."""
    record = {**asdict(fingerprint), "outputs": list(fingerprint.outputs), "status": status, "finished_at": finished_at}
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_done(path: Path) -> dict[str, Any] | None:
    """The done-marker's content, or ``None`` when missing or unreadable (treated as not done)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable done-marker %s (%s)", path, exc)
        return None


def same_computation(marker: dict[str, Any], fingerprint: Fingerprint) -> bool:
    """Whether a done-marker's results come from the inputs, configuration, model and subject
    of ``fingerprint``, whatever its status and output formats (what the tables depend on)."""
    expected = asdict(fingerprint)
    expected.pop("outputs")
    return all(marker.get(key) == value for key, value in expected.items())


def is_finished(path: Path, fingerprint: Fingerprint) -> bool:
    """Whether ``path`` marks a successful scan computed from exactly this fingerprint.

    Failed scans are never finished: a rerun tries them again (the failure may have been
    transient, e.g. memory). Output formats may be a subset of those written before.
    """
    marker = read_done(path)
    if marker is None or marker.get("status") != "ok":
        return False
    expected = asdict(fingerprint)
    outputs = set(expected.pop("outputs"))
    if not outputs <= set(marker.get("outputs") or ()):
        return False  # an output format was asked for that the finished run did not write
    return all(marker.get(key) == value for key, value in expected.items())
