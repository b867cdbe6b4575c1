"""Process exit codes of the ``lunglesion`` command (documented in the README)."""

from __future__ import annotations

from enum import IntEnum

#: The ``--help`` line of the commands that process scans (``run`` and the top-level parser).
EXIT_CODES_HELP = "Exit codes: 0 all done, 1 internal error, 2 bad usage/config/cohort/model file, 3 some scans failed."


class ExitCode(IntEnum):
    """Exit status of a ``lunglesion`` command."""

    OK = 0
    """Everything asked for was done."""
    INTERNAL_ERROR = 1
    """A bug or an unexpected environment failure; the log has the traceback."""
    USAGE = 2
    """Bad command line, configuration, cohort file, missing input path or model file; nothing was processed."""
    SOME_FAILED = 3
    """The run finished, but some scans failed; see errors.csv."""
