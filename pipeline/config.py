"""Load ``configs/default.yaml``, overlay a user's file, and validate the result.

The default file holds every tunable value. A user's ``--config FILE`` only needs the
keys it changes; it is merged key by key over the default, then the whole tree is
validated into :class:`Settings`. Any mistake gives one :class:`~pipeline.errors.ConfigError`
naming the key, the offending value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from metrics.settings import MetricsSettings, TimepointSettings
from pipeline.errors import ConfigError
from pipeline.ingest.settings import GeometrySettings, HUSettings, IndexSettings, SelectionSettings
from pipeline.run_settings import OutputSettings, RunSettings
from pipeline.settings_base import SettingsModel
from segmentation.settings import SegmentationSettings

__all__ = ["Settings", "load_settings", "default_config_path", "settings_hash"]


class Settings(SettingsModel):
    """Every tunable of a run, one section per pipeline stage."""

    index: IndexSettings
    selection: SelectionSettings
    geometry: GeometrySettings
    hu: HUSettings
    segmentation: SegmentationSettings
    metrics: MetricsSettings
    timepoints: TimepointSettings
    run: RunSettings
    outputs: OutputSettings


def default_config_path() -> Path:
    """Path of the packaged ``configs/default.yaml``."""
    from configs import DEFAULT_CONFIG

    return Path(str(DEFAULT_CONFIG))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); save it as UTF-8 YAML") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any], *, where: str, source: Path) -> dict[str, Any]:
    """Merge ``overlay`` into ``base`` key by key; unknown keys are reported, not ignored."""
    merged = dict(base)
    for key, value in overlay.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in base:
            allowed = ", ".join(sorted(map(str, base))) or "(none)"
            raise ConfigError(f"{source}: unknown key '{dotted}'; allowed keys here: {allowed}")
        if isinstance(base[key], Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping of settings, got {value!r}")
            merged[key] = _merge(base[key], value, where=dotted, source=source)
        else:
            merged[key] = value
    return merged


#: Settings that name files or folders: a relative value in a ``--config`` file is relative to
#: that file's folder (not to wherever the command happens to be started).
PATH_KEYS: tuple[tuple[str, ...], ...] = (("segmentation", "weights"), ("segmentation", "training", "cache_dir"))


def _anchor_paths(overlay: dict[str, Any], *, folder: Path) -> dict[str, Any]:
    """``overlay`` with its relative :data:`PATH_KEYS` values joined to ``folder`` (``~`` paths kept)."""
    for keys in PATH_KEYS:
        node: Any = overlay
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(node, dict) or not isinstance(node.get(keys[-1]), str):
            continue
        value = node[keys[-1]]
        if value and not value.startswith("~") and not Path(value).is_absolute():
            node[keys[-1]] = str(folder / value)
    return overlay


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
    return f"'{key}': {error['msg']}{shown}"


def override_settings(settings: Settings, changes: Mapping[str, Mapping[str, Any]], *, source: str) -> Settings:
    """``settings`` with command-line values put in, validated like a configuration file.

    ``changes`` maps sections to the keys they change, e.g. ``{"run": {"workers": 2}}``.

    Raises
    ------
    ConfigError
        If a value is not allowed (``source`` names where it came from, e.g. ``command line``).
    """
    tree = settings.model_dump(mode="json")
    for section, values in changes.items():
        tree[section] = {**tree[section], **values}
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_settings(overlay: str | Path | None = None, *, base: str | Path | None = None) -> Settings:
    """Load the default configuration, optionally overlaid by a user's file.

    Parameters
    ----------
    overlay
        A YAML file holding only the keys to change. Relative file and folder names in it
        (:data:`PATH_KEYS`) are relative to its own folder.
    base
        The complete default file; the packaged ``configs/default.yaml`` when omitted.

    Raises
    ------
    ConfigError
        If a file is missing or malformed, a key is unknown, or a value is not allowed.
    """
    base_path = Path(base) if base is not None else default_config_path()
    tree = _read_yaml(base_path)
    source = base_path
    if overlay is not None:
        source = Path(overlay)
        user = _anchor_paths(_read_yaml(source), folder=source.resolve().parent)
        tree = _merge(tree, user, where="", source=source)
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def settings_hash(settings: Settings) -> str:
    """SHA-256 of the resolved settings in canonical JSON: part of every result's fingerprint."""
    canonical = json.dumps(settings.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
