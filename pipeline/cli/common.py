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


def with_command_line(
    args: argparse.Namespace, settings: Settings, *, check_gpu: bool = True, formats: list[str] | None = None
) -> Settings:
    """``settings`` with ``--workers``, ``--device`` (and the output ``formats``) of a scan-processing command.

    The values are validated like a configuration file's and become part of the settings, so
    that ``run.json``'s resolved configuration shows what ran. ``check_gpu`` refuses
    ``--device cuda`` where this process has no GPU (off when remote workers do the work).

    Raises
    ------
    ConfigError
        On a worker count below 1, an unusable device or a value the settings do not allow.
    """
    from pipeline.config import override_settings
    from pipeline.errors import ConfigError

    workers = args.workers if args.workers is not None else settings.run.workers
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    device = args.device or settings.segmentation.device.value
    if check_gpu:
        check_device(device, method=settings.segmentation.method)
    changes: dict[str, dict] = {"run": {"workers": workers}, "segmentation": {"device": device}}
    if formats is not None:
        changes["outputs"] = {"formats": formats}
    return override_settings(settings, changes, source="command line")


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
