"""Entry point of the ``lunglesion`` console script."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.cli import demo_cmd, evaluate_cmd, index_cmd, report_cmd, run_cmd, train_cmd
from pipeline.cli.common import common_parser
from pipeline.errors import ErrorCode, LunglesionError
from pipeline.exit_codes import EXIT_CODES_HELP, ExitCode
from pipeline.logs import configure_logging

log = logging.getLogger(__name__)

#: Sub-command modules; each exposes ``register(subparsers, parents)`` which sets ``func``.
COMMANDS: tuple = (run_cmd, index_cmd, report_cmd, train_cmd, evaluate_cmd, demo_cmd)

#: Errors caused by what the user asked for (exit 2), as opposed to per-scan failures: a bad
#: option or file, a model file that is missing or does not match its checksum, labels off
#: their image's grid (when they stop a whole command, e.g. fine-tuning), a training checkpoint
#: that another run wrote.
USAGE_ERRORS = {
    ErrorCode.CONFIG_INVALID,
    ErrorCode.COHORT_INVALID,
    ErrorCode.INPUT_NOT_FOUND,
    ErrorCode.WEIGHTS_MISSING,
    ErrorCode.WEIGHTS_CORRUPT,
    ErrorCode.LABEL_GRID_MISMATCH,
    ErrorCode.CHECKPOINT_INVALID,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lunglesion",
        description="Measure lung disease (ground-glass opacity, consolidation) on chest CT.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"lunglesion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parents = [common_parser()]
    for command in COMMANDS:
        command.register(subparsers, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``lunglesion`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(level=args.log_level, show_phi=args.log_phi)
    try:
        return int(args.func(args))
    except LunglesionError as exc:
        if exc.code in USAGE_ERRORS:
            print(f"lunglesion: error [{exc.code.value}]: {exc.message}", file=sys.stderr)
            return int(ExitCode.USAGE)
        log.exception("lunglesion %s failed", args.command)
        return int(ExitCode.INTERNAL_ERROR)
    except KeyboardInterrupt:
        print("lunglesion: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - the last line of defence prints the traceback to the log
        log.exception("internal error in 'lunglesion %s' (please report this with the log)", args.command)
        return int(ExitCode.INTERNAL_ERROR)


if __name__ == "__main__":
    sys.exit(main())
