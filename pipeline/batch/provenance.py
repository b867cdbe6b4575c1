"""``run.json``: what ran, with which versions, configuration and model, and how it ended."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.io.atomic import write_text_atomic

_LIBRARIES = ("torch", "monai", "SimpleITK", "pydicom", "highdicom", "numpy", "dask", "distributed")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the results."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repository: Path | None = None) -> str | None:
    """The git commit of the source tree lunglesion runs from, if it is a git checkout."""
    where = repository or Path(__file__).resolve().parents[2]
    if not (where / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return f"{commit}-dirty" if dirty.stdout.strip() else commit


def utc_now() -> str:
    """Current time as an ISO 8601 UTC string (seconds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def write_run_json(destination: Path, record: dict[str, Any]) -> Path:
    """Write the provenance record (with versions, platform and git commit added) atomically."""
    full = {
        "pipeline_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
        **record,
    }
    write_text_atomic(Path(destination), json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
    return Path(destination)
