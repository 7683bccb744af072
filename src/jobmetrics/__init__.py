"""jobmetrics: job lifecycle events of a serverless queue in, exact mergeable metrics out.

Public names:

* :class:`HdrHistogram` — a numba log-linear histogram that reads and writes HdrHistogram V2.
* :class:`Aggregator` — events in (``record`` one, ``ingest`` a batch), per-endpoint, per-window
  metrics out.
"""

from __future__ import annotations

from .aggregator import Aggregator
from .events import EndpointRegistry, EventBatch, Rejections
from .geometry import Geometry
from .histogram import HdrHistogram
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
]

__version__ = "0.1.0"
