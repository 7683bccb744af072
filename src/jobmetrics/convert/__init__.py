"""Adapters from public job and request traces to jobmetrics event logs (SPEC §1).

* :mod:`.swf` — Standard Workload Format logs of the Parallel Workloads Archive.
* :mod:`.alibaba_pods` — the Alibaba GPU cluster pod list (2023).
* :mod:`.alibaba_serverless` — the Alibaba GenAI serverless request log and cold-start samples.

Each ``*_events`` function streams time-ordered Arrow tables; each ``convert_*`` function writes an
event log file and returns a :class:`Summary`. The mappings are documented in docs/convert.md.
"""

from __future__ import annotations

from ._common import Summary
from .alibaba_pods import convert_alibaba_pods, pod_events
from .alibaba_serverless import (
    cold_start_events,
    convert_alibaba_cold_starts,
    convert_alibaba_serverless,
    request_events,
)
from .swf import convert_swf, swf_events

__all__ = [
    "Summary",
    "cold_start_events",
    "convert_alibaba_cold_starts",
    "convert_alibaba_pods",
    "convert_alibaba_serverless",
    "convert_swf",
    "pod_events",
    "request_events",
    "swf_events",
]
