"""Sliding queries (``last=...``) merge exactly the tumbling windows they cover."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobmetrics import Aggregator, HdrHistogram
from streams import synthetic_events

METRICS = ("execution_time", "delay_time")


@pytest.fixture(scope="module")
def stream():  # type: ignore[no-untyped-def]
    # ~3 hours of traffic at 20 jobs/s on two endpoints
    return synthetic_events(200_000, seed=11, n_endpoints=2, rate_per_s=20)


@pytest.fixture(scope="module")
def aggregated(stream):  # type: ignore[no-untyped-def]
    agg = Aggregator(window="60s", allowed_lateness="5s")
    agg.ingest(stream)
    return agg


def _expected(agg: Aggregator, endpoint: str, metric: str, windows: int) -> HdrHistogram:
    """The sum of the snapshot's last ``windows`` rows of ``endpoint``, decoded from their bytes."""
    snap = agg.snapshot().to_pydict()
    clock = agg._engine.clock_window
    assert clock is not None
    out = HdrHistogram(highest=agg.geometry.highest, significant_figures=agg.geometry.significant_figures)
    for ep, start, blob in zip(snap["endpoint"], snap["window_start"], snap[f"{metric}_hdr"], strict=True):
        w = int(start.timestamp()) // 60
        if ep == endpoint and clock - windows < w <= clock and blob is not None:
            out.add(HdrHistogram.decode(blob))
    return out


@settings(max_examples=25)
@given(minutes=st.integers(1, 200), metric=st.sampled_from(METRICS), which=st.integers(0, 1))
def test_last_n_minutes_equals_sum_of_windows(aggregated, minutes, metric, which) -> None:  # type: ignore[no-untyped-def]
    endpoint = aggregated.endpoints()[which]
    got = aggregated.histogram(endpoint, metric, last=f"{minutes}m")
    assert got == _expected(aggregated, endpoint, metric, minutes)
    p = aggregated.percentiles(endpoint, metric, last=f"{minutes}m")
    if got.total_count:
        assert p == [v / 1000 for v in got.values_at_quantiles(aggregated.quantiles).tolist()]
    else:
        assert p is None


def test_metrics_last_matches_histogram(aggregated) -> None:  # type: ignore[no-untyped-def]
    endpoint = aggregated.endpoints()[0]
    m = aggregated.metrics(endpoint, last="1h")
    h = aggregated.histogram(endpoint, "execution_time", last="1h")
    assert m["execution_time_count"] == h.total_count
    assert m["execution_time_p90_ms"] == h.value_at_quantile(0.9) / 1000
    everything = aggregated.metrics(endpoint)
    assert everything["requests"] == aggregated.totals(endpoint)["requests"] > m["requests"] > 0


def test_history_bounds_memory_and_keeps_recent_windows_exact(stream) -> None:  # type: ignore[no-untyped-def]
    full = Aggregator(window="60s")
    bounded = Aggregator(window="60s", history="30m")
    n, chunks = stream.num_rows, 12
    sizes = []
    for i in range(chunks):
        a, b = i * n // chunks, (i + 1) * n // chunks
        full.ingest(stream.slice(a, b - a))
        bounded.ingest(stream.slice(a, b - a))
        sizes.append(bounded.memory_bytes()["closed_rows"])
    # closed windows older than 30 minutes are gone: memory stops growing with the stream
    assert len(bounded._engine.closed) <= 30 * len(bounded.endpoints())
    assert max(sizes[chunks // 2 :]) <= max(sizes[: chunks // 2])
    assert bounded.memory_bytes()["closed_rows"] < full.memory_bytes()["closed_rows"]
    windows = bounded.snapshot().column("window_start").to_numpy()
    assert (windows.max() - windows.min()) <= np.timedelta64(30, "m")
    for endpoint in full.endpoints():
        for metric in METRICS:
            for last in ("1m", "10m", "29m"):
                assert bounded.histogram(endpoint, metric, last=last) == full.histogram(
                    endpoint, metric, last=last
                )
