"""Dask worker plugins of the local cluster (imported only where a LocalCluster starts).

A worker that has loaded the model holds hundreds of thousands of Python objects (torch,
MONAI, SimpleITK). At shutdown the interpreter's final garbage collections walk them all:
measured on the 2-core development machine, a process that had loaded the model took 1.8 s
to exit, 0.3 s after :func:`gc.freeze`. Two such workers closing at once on 2 cores took
longer than the 4 s a Dask nanny waits before it kills its worker, and every multi-worker run
ended with "Worker process still alive after 4.0 seconds, killing" (closing a 2-worker
cluster: 3.6-3.9 s without the plugin, 0.7 s with it).
"""

from __future__ import annotations

import gc
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class QuickExit(WorkerPlugin):
    """Freeze the garbage collector when the worker closes, so its process exits at once.

    Only the local cluster's own workers get it: the run owns them and ends them when every
    result is written. Workers of a cluster given with ``--scheduler`` are left alone.
    """

    name = "lunglesion-quick-exit"

    def teardown(self, worker: Any) -> None:
        """Called by the worker as it closes, after its last task."""
        gc.freeze()
