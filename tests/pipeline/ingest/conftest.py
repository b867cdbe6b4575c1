"""Fixtures for the ingestion tests: settings with overrides, small synthetic series, real data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import Settings, load_settings
from pipeline.synthetic import chest_phantom


def with_overrides(settings: Settings, **sections: dict) -> Settings:
    """A copy of ``settings`` with some keys of some sections changed (validated like a config file)."""
    tree = settings.model_dump(mode="json")
    for section, values in sections.items():
        tree[section].update(values)
    return Settings.model_validate(tree)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The packaged default configuration."""
    return load_settings()


@pytest.fixture(scope="session")
def permissive(settings: Settings) -> Settings:
    """Defaults, but any slice count and coverage is enough (to load single files and small sets)."""
    return with_overrides(settings, selection={"min_slices": 1, "min_z_extent_mm": 0.0})


@pytest.fixture(scope="session")
def overrides() -> Callable[..., Settings]:
    return with_overrides


@pytest.fixture(scope="session")
def phantom_hu() -> np.ndarray:
    """A 20 x 32 x 32 chest phantom in HU (fixed seed, noisy body, GGO blob)."""
    return chest_phantom((20, 32, 32), ggo=True, consolidation=True, noise_hu=15.0, seed=3).hu


@pytest.fixture
def tmp_series_dir(tmp_path: Path) -> Path:
    path = tmp_path / "dicom"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def real_data() -> Callable[[str], Path]:
    """``real_data("dlwpt-chest-ct-dicom")`` -> folder of a real data set from ../shared/data (skips when absent)."""
    from tests.conftest import shared_data_path

    return shared_data_path
