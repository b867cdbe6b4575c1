"""Settings of the segmentation stage (owned by the segmentation package)."""

from __future__ import annotations

from enum import Enum

from pipeline.settings_base import SettingsModel


class SegmentationMethod(str, Enum):
    """Which segmenter produces the lung and lesion masks."""

    MODEL = "model"
    CLASSICAL = "classical"


class DeviceChoice(str, Enum):
    """Where the network runs."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class SegmentationSettings(SettingsModel):
    """How lungs and lesions are segmented."""

    method: SegmentationMethod
    device: DeviceChoice
