"""Validation of the ingestion sections of the configuration (one clear message per bad key)."""

from __future__ import annotations

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError


def overlay(tmp_path, text: str):
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    return load_settings(path)


def test_defaults_load(settings):
    assert settings.selection.modalities == ["CT"]
    assert settings.geometry.on_gantry_tilt.value == "resample"
    assert settings.hu.padding_hu == -1000
    assert ".nii.gz" in settings.index.volume_suffixes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("selection:\n  reject_description_patterns: []\n", "unknown key 'selection.reject_description_patterns'"),
        ("selection:\n  sharp_kernel_patterns: ['[B']\n", "invalid regular expression"),
        ("selection:\n  max_axial_deviation_deg: 120\n", "selection.max_axial_deviation_deg"),
        ("geometry:\n  tilt_tolerance_deg: 40\n", "must be smaller than max_tilt_deg"),
        ("geometry:\n  on_irregular_spacing: interpolate\n", "'resample'"),
        ("index:\n  volume_suffixes: [nii]\n", "start with a dot"),
        ("index:\n  workers: 0\n", "index.workers"),
        ("hu:\n  out_of_fov_below_hu: 4000\n", "must be below clip_max_hu"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as raised:
        overlay(tmp_path, text)
    assert message in raised.value.message


def test_overlay_changes_only_what_it_names(tmp_path, settings):
    changed = overlay(tmp_path, "selection:\n  kernel_preference: sharp\n  min_slices: 40\n")
    assert changed.selection.kernel_preference.value == "sharp" and changed.selection.min_slices == 40
    assert changed.selection.min_z_extent_mm == settings.selection.min_z_extent_mm
    assert changed.geometry == settings.geometry and changed.hu == settings.hu
    assert [s.upper() for s in changed.index.volume_suffixes] == [s.upper() for s in settings.index.volume_suffixes]
