"""jobmetrics on Dask: aggregate event logs that outgrow one machine, with the same result.

:func:`aggregate_logs` reads a log (paths or a ``dask.dataframe``), judges lateness in arrival
order across partitions, shuffles so that each job's events — and every worker event of an
endpoint — land in one partition, runs an :class:`~jobmetrics.Aggregator` (the same numba kernels)
per partition, merges the partial snapshots exactly in a tree, and writes the SPEC §4 Parquet from
a worker. The snapshot equals one process fed the whole log. See ``docs/dask.md``.

Needs the ``dask`` extra: ``pip install 'jobmetrics[dask]'``.
"""

from __future__ import annotations

try:
    import dask
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"jobmetrics.dask needs Dask (dask[dataframe] and distributed), which is not installed ({exc}); "
        "install it with: pip install 'jobmetrics[dask]'"
    ) from exc

from .partials import kernel_cache_stats
from .pipeline import aggregate_logs, input_partitions

__all__ = ["aggregate_logs", "input_partitions", "kernel_cache_stats"]
