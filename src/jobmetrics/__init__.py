"""jobmetrics: job lifecycle events of a serverless queue in, exact mergeable metrics out.

Public names:

* :class:`HdrHistogram` — a numba log-linear histogram that reads and writes HdrHistogram V2.
* :class:`Aggregator` — events in (``record`` one, ``ingest`` a batch), per-endpoint, per-window
  metrics out (live queries, Arrow ``snapshot()``).
* :func:`rollup` — exact re-aggregation of snapshot rows into coarser windows or across sources.
"""

from __future__ import annotations

from .aggregator import Aggregator
from .batch import aggregate_logs
from .events import EndpointRegistry, EventBatch, Rejections
from .geometry import Geometry
from .histogram import HdrHistogram
from .snapshot import rollup
from .states import JobState, Kind, WorkerState

__all__ = [
    "Aggregator",
    "EndpointRegistry",
    "EventBatch",
    "Geometry",
    "HdrHistogram",
    "JobState",
    "Kind",
    "Rejections",
    "WorkerState",
    "aggregate_logs",
    "rollup",
]

__version__ = "0.1.0"
