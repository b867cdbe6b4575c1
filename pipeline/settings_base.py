"""Base class shared by every settings section (ingest, segmentation, metrics, run)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SettingsModel(BaseModel):
    """Strict, immutable settings: unknown keys are errors, values are validated on load.

    Sections declare no defaults of their own: ``configs/default.yaml`` is the one
    place where default values live, so a setting cannot drift between code and file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
