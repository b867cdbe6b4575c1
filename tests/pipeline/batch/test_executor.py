"""The local Dask cluster the batch runner starts."""

from __future__ import annotations

import gc
import os

import pytest

import pipeline.batch.executor as executor
from pipeline.batch.executor import ExecutionOptions, dask_client
from pipeline.batch.worker_plugins import QuickExit
from pipeline.errors import ConfigError


def _environment() -> dict[str, str | None]:
    keys = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {key: os.environ.get(key) for key in keys}


def test_workers_keep_the_adaptive_allocator_and_single_threaded_blas():
    # Dask's default MALLOC_TRIM_THRESHOLD_ doubled the segmentation time of a real scan (executor.py).
    with dask_client(ExecutionOptions(workers=1)) as client:
        (environment,) = client.run(_environment).values()
    assert environment == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _plugin_names(dask_worker) -> list[str]:
    return sorted(dask_worker.plugins)


def test_local_workers_carry_the_quick_exit_plugin():
    # Without it, two workers that had loaded the model outlived the nanny's 4 s wait at shutdown.
    with dask_client(ExecutionOptions(workers=1)) as client:
        (names,) = client.run(_plugin_names).values()
    assert QuickExit.name in names


def test_quick_exit_freezes_the_garbage_collector_on_teardown():
    before = gc.get_freeze_count()
    try:
        QuickExit().teardown(worker=None)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_two_runs_on_one_scheduler_never_share_a_task():
    """A task key names the run too: another client's task for the same scan is not this run's."""
    from operator import neg

    from distributed import Client, LocalCluster

    from pipeline.batch.executor import run_tasks

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as other_run,
    ):
        held = other_run.submit(neg, 5, key="lunglesion-scan1", pure=False)  # the other run's scan1, kept alive
        assert held.result() == -5
        results = []
        run_tasks(
            abs,
            [-7],
            key=lambda item: "scan1",
            options=ExecutionOptions(workers=1, scheduler=cluster.scheduler_address),
            on_result=lambda item, result: results.append(result),
        )
    assert results == [7]


def test_an_unreachable_scheduler_is_a_clear_usage_error(monkeypatch):
    """Not an internal error with a traceback: the address is named and the run refused."""
    monkeypatch.setattr(executor, "SCHEDULER_TIMEOUT_S", 2)
    with pytest.raises(ConfigError, match=r"--scheduler tcp://127\.0\.0\.1:9: no Dask scheduler answered within 2 s"):
        with dask_client(ExecutionOptions(workers=1, scheduler="tcp://127.0.0.1:9")):
            pass


@pytest.mark.parametrize("text", ["auto", "AUTO", "4GB", "500MiB", "2e9"])
def test_memory_limits_dask_reads_are_accepted(text):
    from pipeline.cli.run_cmd import _check_memory_limit

    _check_memory_limit(text)


@pytest.mark.parametrize("text", ["lots", "-1GB", "0"])
def test_memory_limits_dask_cannot_use_are_refused(text):
    from pipeline.cli.run_cmd import _check_memory_limit

    with pytest.raises(ConfigError, match="--memory-limit"):
        _check_memory_limit(text)
