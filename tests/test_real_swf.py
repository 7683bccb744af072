"""A real job log through the engine: KTH SP2 1996-97, 28 476 jobs (SOURCES.md §1).

Counts must be exact; delay and execution percentiles must be within the HDR relative-error
bound (2**-7 at 2 significant figures) of the exact order statistics of the log's own wait and
run fields.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swf import SwfLog, read_swf, swf_events

KTH = "real/KTH-SP2-1996-2.1-cln.swf.gz"
N_JOBS = 28_476
QUANTILES = (0.5, 0.9, 0.99)
RELATIVE_ERROR = 2.0**-7  # HDR, 2 significant figures


@pytest.fixture(scope="module")
def kth(shared_data: Path) -> SwfLog:
    path = shared_data / KTH
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return read_swf(path)


@pytest.fixture(scope="module")
def aggregated(kth: SwfLog) -> Any:
    from jobmetrics import Aggregator

    agg = Aggregator(window="1d", job_ttl="30d", retention="30d", highest="30d", allowed_lateness="0s")
    agg.ingest(swf_events(kth, endpoint="kth-sp2", sort=True))
    agg.flush()
    return agg


def exact_quantile(values: np.ndarray, q: float) -> int:
    """The order statistic of rank ceil(q * n) (1-based)."""
    ordered = np.sort(values)
    return int(ordered[math.ceil(q * ordered.size) - 1])


def test_log_reads_as_documented(kth: SwfLog) -> None:
    assert len(kth) == N_JOBS
    assert kth.unix_start == 843_480_031
    assert np.count_nonzero(kth.status == 1) == 20_530
    assert np.count_nonzero(kth.status == 0) == 7_946
    assert kth.wait.min() >= 0
    assert kth.run.min() >= 0
    table = swf_events(kth)
    assert table.num_rows == 3 * N_JOBS
    assert table.column("ts")[0].as_py() == (843_480_031 + 599_850) * 1000


def test_counts(aggregated: Any) -> None:
    assert aggregated.endpoints() == ["kth-sp2"]
    expected = {
        "requests": N_JOBS,
        "completed": 20_530,
        "failed": 7_946,
        "cancelled": 0,
        "timed_out": 0,
        "retried": 0,
        "duplicates": 0,
        "invalid_transitions": 0,
        "orphans": 0,
        "expired": 0,
        "late_events": 0,
        "in_queue": 0,
        "in_progress": 0,
    }
    totals = aggregated.totals("kth-sp2")
    assert {name: totals[name] for name in expected} == expected
    assert not {pair: n for pair, n in aggregated.invalid_transition_counts().items() if n}


@pytest.mark.parametrize(("metric", "field"), [("delay_time", "wait"), ("execution_time", "run")])
def test_percentiles_within_hdr_error(aggregated: Any, kth: SwfLog, metric: str, field: str) -> None:
    histogram = aggregated.histogram("kth-sp2", metric)
    assert histogram.total_count == N_JOBS
    values_us = getattr(kth, field) * 1_000_000
    for q in QUANTILES:
        exact = exact_quantile(values_us, q)
        got = histogram.value_at_quantile(q)
        assert abs(got - exact) <= exact * RELATIVE_ERROR + 1, (metric, q, got, exact)
