"""Fixtures for the metrics tests: validated settings and small synthetic volumes with known counts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from metrics.settings import MetricsSettings, TimepointSettings
from pipeline.config import load_settings


def _updated(model, **changes):
    """A copy of a settings section with (nested) values changed, validated again."""
    tree = model.model_dump(mode="json")
    for key, value in changes.items():
        if isinstance(value, dict):
            tree[key].update(value)
        else:
            tree[key] = value
    return type(model).model_validate(tree)


@pytest.fixture(scope="session")
def default_metrics() -> MetricsSettings:
    return load_settings().metrics


@pytest.fixture(scope="session")
def metrics_settings(default_metrics) -> MetricsSettings:
    """Defaults, except that the calibration check samples every voxel (small test volumes)."""
    return _updated(default_metrics, calibration={"sample_stride": 1, "min_voxels": 50})


@pytest.fixture(scope="session")
def timepoint_settings() -> TimepointSettings:
    return load_settings().timepoints


@pytest.fixture
def updated() -> Callable:
    """``updated(section, key=value, nested={...})``: a validated copy of a settings section."""
    return _updated


@pytest.fixture
def empty_volume() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``empty_volume(shape)``: HU (air -1000 outside a +40 HU body block), empty lung and lesion masks."""

    def make(shape=(12, 20, 24)):
        hu = np.full(shape, -1000, dtype=np.int16)
        hu[:, 2:-2, 2:-2] = 40
        return hu, np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)

    return make
