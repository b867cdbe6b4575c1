"""What decides that a finished scan can be reused: the per-scan configuration hash."""

from __future__ import annotations

from pipeline.batch.fingerprint import scan_config_hash
from pipeline.config import load_settings
from segmentation.settings import SegmentationMethod


def _with(settings, section: str, **changes):
    part = getattr(settings, section)
    return settings.model_copy(update={section: part.model_copy(update=changes)})


def test_training_parameters_and_threads_do_not_invalidate_finished_scans():
    settings = load_settings()
    base = scan_config_hash(settings)
    seg = settings.segmentation
    retrained = settings.model_copy(
        update={"segmentation": seg.model_copy(update={"training": seg.training.model_copy(update={"steps": 7})})}
    )
    assert scan_config_hash(retrained) == base
    assert scan_config_hash(_with(settings, "segmentation", threads=1)) == base


def test_inference_and_measurement_settings_do():
    settings = load_settings()
    base = scan_config_hash(settings)
    assert scan_config_hash(_with(settings, "segmentation", min_lesion_voxels=7)) != base
    assert scan_config_hash(_with(settings, "segmentation", method=SegmentationMethod.CLASSICAL)) != base
    assert scan_config_hash(_with(settings, "hu", padding_hu=-1024)) != base
