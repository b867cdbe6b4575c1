"""Batch runs: per-scan tasks, resumable results, Dask execution, provenance."""
