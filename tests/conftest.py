"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_OPEN = REPO_ROOT.parent / "shared" / "data" / "open"


def shared_data_path(name: str) -> Path:
    """Folder of the real data set ``name`` from ``../shared/data``; skips the test where it is absent.

    The data sets are unpacked on demand by ``../shared/data/open`` into a cache outside the
    repository; they are never copied into the repository (their licences differ).
    """
    if not SHARED_OPEN.exists():
        pytest.skip(f"real data set '{name}' needs ../shared/data (not present next to this checkout)")
    try:
        out = subprocess.run([str(SHARED_OPEN), name], check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"real data set '{name}' could not be opened: {exc.stderr.strip()}")
    return Path(out.stdout.strip())


@pytest.fixture
def shared_data():
    """Function fixture: ``shared_data("dlwpt-chest-ct-dicom")`` -> folder (skips when absent)."""
    return shared_data_path
