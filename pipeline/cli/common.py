"""Options and helpers shared by every sub-command."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Settings, load_settings


def common_parser() -> argparse.ArgumentParser:
    """Options every sub-command accepts (used as an argparse parent)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("common options")
    group.add_argument("--config", type=Path, metavar="FILE", help="YAML file overlaid on configs/default.yaml")
    group.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    group.add_argument(
        "--log-phi",
        action="store_true",
        help="include patient identifiers in log lines (off by default: logs carry scan ids only)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The validated settings for this invocation (default config + ``--config``)."""
    return load_settings(args.config)


def check_device(device: str, *, method: object) -> None:
    """Refuse a device this process cannot use (``cuda`` without a GPU) before any work starts.

    The classical segmenter runs on the CPU whatever the device, so nothing is checked for it.

    Raises
    ------
    ConfigError
        Naming the device and why it cannot be used.
    """
    from pipeline.errors import ConfigError, SegmentationError
    from segmentation.inference import resolve_device
    from segmentation.settings import SegmentationMethod

    if method is SegmentationMethod.CLASSICAL:
        return
    try:
        resolve_device(device)
    except SegmentationError as exc:
        raise ConfigError(f"--device {device}: {exc.message}; use --device auto or cpu") from None
