"""Settings of the measurement and timepoint-linking stages (owned by the metrics package)."""

from __future__ import annotations

from pipeline.settings_base import SettingsModel


class MetricsSettings(SettingsModel):
    """Per-scan measurement parameters and quality-flag limits."""


class TimepointSettings(SettingsModel):
    """How scans are linked to treatment events and how change is labelled."""
