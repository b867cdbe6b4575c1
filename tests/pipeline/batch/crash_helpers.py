"""A ``process_scan`` stand-in whose worker dies on one series (imported by the Dask workers by name)."""

from __future__ import annotations

import os

#: Environment variable naming the SeriesInstanceUID whose worker process dies.
CRASH_SERIES_ENV = "LUNGLESION_TEST_CRASH_SERIES"


def process_or_die(task, *, settings):  # noqa: ANN001 - same signature as pipeline.batch.task.process_scan
    """Like ``process_scan``, but the worker process exits at once (no exception) for one series."""
    from pipeline.batch.task import process_scan

    if task.candidate.series_uid == os.environ.get(CRASH_SERIES_ENV):
        os._exit(17)  # like a segfault or the kernel's OOM killer
    return process_scan(task, settings=settings)
