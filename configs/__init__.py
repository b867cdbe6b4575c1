"""Packaged configuration files; ``default.yaml`` holds every tunable of lunglesion."""

from importlib.resources import files

DEFAULT_CONFIG = files(__name__) / "default.yaml"
