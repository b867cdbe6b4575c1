"""Settings of batch runs and of the files they write."""

from __future__ import annotations

from pydantic import Field

from pipeline.settings_base import SettingsModel


class RunSettings(SettingsModel):
    """Execution of a batch run."""

    workers: int = Field(ge=1, le=256)


class OutputSettings(SettingsModel):
    """Which result files are written per scan."""

    formats: list[str]
