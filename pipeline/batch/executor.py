"""Running per-scan tasks on Dask distributed: a LocalCluster here, or an existing cluster.

Both paths use the same client code, so the distributed path is the one the tests run.
A task function must not raise for bad input (it returns a failure record instead); what
reaches this module as an exception is a crash: a worker process that died (segfault,
out-of-memory kill, ``os._exit``) becomes :attr:`ErrorCode.WORKER_CRASHED`, anything
else :attr:`ErrorCode.INTERNAL_ERROR`. Other tasks keep running either way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.errors import ConfigError, ErrorCode

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long ``--scheduler`` waits for the scheduler to answer before the run is refused.
SCHEDULER_TIMEOUT_S = 30


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how many tasks run at once."""

    workers: int
    """Worker processes of the local cluster (ignored with ``scheduler``)."""
    scheduler: str | None = None
    """Address of an existing Dask scheduler (``tcp://host:8786``); ``None`` starts a LocalCluster."""
    memory_limit: str | None = None
    """Per-worker memory limit of the local cluster (``"4GB"``); ``None`` means no limit."""
    retries_after_crash: int = 1
    """How often a task whose worker died is tried again on another worker before it is failed."""


@dataclass(frozen=True)
class TaskCrash:
    """A task that did not return: its worker died or the function raised."""

    code: ErrorCode
    message: str


@contextmanager
def dask_client(options: ExecutionOptions) -> Iterator[Any]:
    """A ``distributed.Client`` on a fresh LocalCluster or connected to ``options.scheduler``."""
    import dask
    from dask.distributed import Client, LocalCluster

    # The scheduler of a LocalCluster lives in this process: keep its chatter out of our log
    # unless the user asked for debugging output.
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)

    config = {
        "distributed.scheduler.allowed-failures": options.retries_after_crash,
        # One task per worker at a time: a crashing scan must not take queued scans down with it.
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.worker.daemon": False,
        "distributed.admin.tick.limit": "60s",
        # What a LocalCluster's nanny puts in each worker's environment. Dask's default also sets
        # MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap threshold: every
        # large temporary array is then mapped and unmapped afresh, and segmentation of the real
        # 99-slice series took 4.8 s instead of 2.3 s (measured here). Scans are freed whole after
        # each task, so the default allocator returns their memory anyway. Torch sets its own
        # thread count per worker; BLAS pools stay at one thread so workers do not oversubscribe.
        "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
    }
    with dask.config.set(config):
        if options.scheduler:
            log.info("connecting to the Dask scheduler at %s", options.scheduler)
            try:
                client = Client(options.scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(
                    f"--scheduler {options.scheduler}: no Dask scheduler answered within {SCHEDULER_TIMEOUT_S} s "
                    f"({type(exc).__name__}); check the address (tcp://host:8786) and that the scheduler is running"
                ) from None
            with client:
                check_worker_versions(client)
                yield client
            return
        log.info("starting a local Dask cluster with %d worker process(es)", options.workers)
        with (
            LocalCluster(
                n_workers=options.workers,
                threads_per_worker=1,
                processes=True,
                # None does not turn the scheduler's HTTP server off (dask/distributed#8136, #7207):
                # it binds 127.0.0.1:8787 and warns when a second run finds that port taken. A free
                # port on the loopback interface never clashes and is not reachable from elsewhere.
                dashboard_address="127.0.0.1:0",
                memory_limit=options.memory_limit or 0,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            from pipeline.batch.worker_plugins import QuickExit

            client.register_plugin(QuickExit())
            yield client


def check_worker_versions(client: Any) -> None:
    """Refuse a cluster whose current workers lack this lunglesion version.

    A worker without lunglesion cannot even unpickle a task, and Dask then retries forever
    instead of failing; a different version would compute different results. Workers that
    join later (adaptive or dask-jobqueue clusters) are not checked.

    Raises
    ------
    ConfigError
        Naming the workers and what they have.
    """
    from importlib.metadata import version

    from pipeline import __version__

    # importlib.metadata.version is importable on any worker, with or without lunglesion.
    found = client.run(version, "lunglesion", on_error="return")
    if not found:
        log.warning("the Dask cluster has no workers yet; their lunglesion version is not checked")
        return
    wrong = {
        address: ("not installed" if isinstance(value, Exception) else value)
        for address, value in sorted(found.items())
        if isinstance(value, Exception) or value != __version__
    }
    if wrong:
        listing = ", ".join(f"{address}: {value}" for address, value in wrong.items())
        raise ConfigError(
            f"{len(wrong)} of the {len(found)} Dask worker(s) do not run lunglesion {__version__} ({listing}); "
            "install the same lunglesion version in the workers' environment"
        )


def run_tasks(
    function: Callable[..., Any],
    items: Sequence[T],
    *,
    key: Callable[[T], str],
    options: ExecutionOptions,
    on_result: Callable[[T, Any], None],
    **kwargs: Any,
) -> None:
    """Run ``function(item, **kwargs)`` for every item on Dask; call ``on_result`` as each finishes.

    ``on_result`` receives either the function's return value or a :class:`TaskCrash`.
    Results arrive in completion order; callers sort what they write.
    """
    if not items:
        return
    from dask.distributed import as_completed

    # Keys name the scan and this call: two runs sharing one scheduler must not share a task
    # (the scheduler would hand the second run the first one's result, written elsewhere).
    run_token = uuid.uuid4().hex[:12]
    with dask_client(options) as client:
        by_future = {}
        for item in items:
            future = client.submit(function, item, key=f"lunglesion-{key(item)}-{run_token}", pure=False, **kwargs)
            by_future[future] = item
        for future in as_completed(list(by_future)):
            item = by_future[future]
            on_result(item, _outcome(future))
            future.release()


def _outcome(future: Any) -> Any:
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        return TaskCrash(
            ErrorCode.WORKER_CRASHED,
            f"the worker process died while processing this scan (crash or memory limit): {exc}",
        )
    except Exception as exc:  # noqa: BLE001 - one broken task never stops the others
        # The text may quote input paths (which can hold names): in the log only with --log-phi.
        log.error("task failed with an unexpected %s", type(exc).__name__, extra={"phi": {"message": str(exc)}})
        return TaskCrash(ErrorCode.INTERNAL_ERROR, f"unexpected {type(exc).__name__}: {exc}")
