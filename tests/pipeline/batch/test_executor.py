"""The local Dask cluster the batch runner starts."""

from __future__ import annotations

import os

from pipeline.batch.executor import ExecutionOptions, dask_client


def _environment() -> dict[str, str | None]:
    keys = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {key: os.environ.get(key) for key in keys}


def test_workers_keep_the_adaptive_allocator_and_single_threaded_blas():
    # Dask's default MALLOC_TRIM_THRESHOLD_ doubled the segmentation time of a real scan (executor.py).
    with dask_client(ExecutionOptions(workers=1)) as client:
        (environment,) = client.run(_environment).values()
    assert environment == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
