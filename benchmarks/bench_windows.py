"""Windowed metrics: sliding queries, snapshot export, and the cost of windows during ingest.

Groups

* ``sliding-query``: P70/P90/P98 of one endpoint's execution time over its last 60 one-minute
  windows. jobmetrics' :meth:`Aggregator.percentiles` against the same merge done with the
  ``hdrhistogram`` package (decode the 60 rows' ``*_hdr`` bytes once, then per query add them and
  ask three percentiles) and against numpy (sum 60 dense count rows, cumulative sum, search).
  The goal: <= 20 µs.
* ``snapshot-export``: ``snapshot()`` of 1 000 endpoints x 60 one-minute windows, against the
  ``hdrhistogram`` package encoding the same number of histograms (scaled per histogram).
  ``extra_info["closed_row_bytes"]`` is the memory per closed (endpoint, window) row.
* ``ingest-windows``: the same 10 M-event log ingested with 60 s windows and with a single 1-day
  window (the lifecycle work alone). The goal: windows cost <= 20 %.

Every benchmark asserts its result, so ``--benchmark-disable`` (smaller workloads) still checks it.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hdrh.histogram import HdrHistogram as PeerHistogram

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import Aggregator, HdrHistogram
from streams import synthetic_events

QUANTILES = (0.7, 0.9, 0.98)
MINUTE_MS = 60_000


def _disabled(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable", default=False))


# -- sliding query -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hour_of_traffic(request: pytest.FixtureRequest) -> tuple[Aggregator, str]:
    """One endpoint (of two) with 61 minutes of traffic at 50 jobs/s, 60 s windows."""
    rate = 5.0 if _disabled(request) else 100.0
    table = synthetic_events(int(rate * 61 * 60), seed=5, n_endpoints=2, rate_per_s=rate)
    agg = Aggregator(window="60s", allowed_lateness="5s")
    agg.ingest(table)
    endpoint = agg.endpoints()[0]
    agg.percentiles(endpoint, "execution_time", last="1h")  # warm-up: compile, file rows, merge blocks
    return agg, endpoint


def _last_hour_rows(agg: Aggregator, endpoint: str) -> list[bytes]:
    snap = agg.snapshot()
    rows = snap.filter(pa.compute.equal(snap["endpoint"], endpoint))
    blobs = [b for b in rows["execution_time_hdr"].to_pylist()[-60:] if b is not None]
    assert len(blobs) >= 55
    return blobs


@pytest.mark.benchmark(group="sliding-query")
def test_sliding_query_jobmetrics(benchmark: Any, hour_of_traffic: tuple[Aggregator, str]) -> None:
    agg, endpoint = hour_of_traffic
    got = benchmark(agg.percentiles, endpoint, "execution_time", last="1h")
    expected = agg.histogram(endpoint, "execution_time", last="1h").values_at_quantiles(QUANTILES)
    assert got == [v / 1000 for v in expected.tolist()]


@pytest.mark.benchmark(group="sliding-query")
def test_sliding_query_hdrhistogram(benchmark: Any, hour_of_traffic: tuple[Aggregator, str]) -> None:
    agg, endpoint = hour_of_traffic
    peers = [PeerHistogram.decode(base64.b64encode(b)) for b in _last_hour_rows(agg, endpoint)]

    def query() -> list[int]:
        total = PeerHistogram(1, agg.geometry.highest, 2)
        for h in peers:
            total.add(h)
        return [total.get_value_at_percentile(q * 100) for q in QUANTILES]

    got = benchmark(query)
    ours = agg.histogram(endpoint, "execution_time", last="60m")
    assert got[0] > 0 and ours.total_count > 0


@pytest.mark.benchmark(group="sliding-query")
def test_sliding_query_numpy(benchmark: Any, hour_of_traffic: tuple[Aggregator, str]) -> None:
    agg, endpoint = hour_of_traffic
    dense = np.stack([HdrHistogram.decode(b).counts for b in _last_hour_rows(agg, endpoint)])
    one = HdrHistogram.decode(_last_hour_rows(agg, endpoint)[0])

    def query() -> list[int]:
        counts = dense.sum(axis=0)
        cum = np.cumsum(counts)
        ranks = np.maximum(1, np.ceil(np.nextafter(np.array(QUANTILES), 0) * cum[-1])).astype(np.int64)
        idx = np.searchsorted(cum, ranks)
        return [one.bucket_range(int(i))[1] for i in idx]

    got = benchmark(query)
    merged = HdrHistogram.from_counts(dense.sum(axis=0), highest=one.highest)
    assert got == merged.values_at_quantiles(QUANTILES).tolist()


# -- snapshot export -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def thousand_endpoints(request: pytest.FixtureRequest) -> Aggregator:
    """1 000 endpoints x 60 one-minute windows, ~20 jobs per endpoint-window (3.6 M events)."""
    endpoints, windows, per = (50, 6, 5) if _disabled(request) else (1000, 60, 20)
    rng = np.random.default_rng(0)
    n = endpoints * windows * per
    arrive = 1_700_000_000_000 + np.sort(rng.integers(0, windows * MINUTE_MS, n))
    ep = rng.integers(0, endpoints, n)
    delay = rng.lognormal(np.log(300), 1, n).astype(np.int64)
    run = rng.lognormal(np.log(3000), 1, n).astype(np.int64)
    names = np.array([f"ep-{i:04d}" for i in range(endpoints)])
    table = pa.table(
        {
            "ts": np.concatenate([arrive, arrive + delay, arrive + delay + run]),
            "endpoint": np.tile(names[ep], 3),
            "job_id": np.tile(np.arange(n), 3),
            "state": np.repeat(np.array(["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]), n),
        }
    ).sort_by("ts")
    agg = Aggregator(window="60s", allowed_lateness="0s", job_capacity=n)
    agg.ingest(table)
    agg.flush()
    return agg


@pytest.mark.benchmark(group="snapshot-export")
def test_snapshot_export_jobmetrics(benchmark: Any, thousand_endpoints: Aggregator) -> None:
    agg = thousand_endpoints
    snap = benchmark.pedantic(agg.snapshot, rounds=3, iterations=1, warmup_rounds=1)
    histograms = sum(snap[f"{m}_hdr"].null_count != snap.num_rows for m in ("execution_time", "delay_time"))
    assert histograms == 2 and snap.num_rows >= len(agg.endpoints()) * 5
    benchmark.extra_info["rows"] = snap.num_rows
    benchmark.extra_info["closed_row_bytes"] = agg.memory_bytes()["closed_rows"] / snap.num_rows


@pytest.mark.benchmark(group="snapshot-export")
def test_snapshot_export_hdrhistogram_encode(benchmark: Any, thousand_endpoints: Aggregator) -> None:
    """The peer encoding 1 000 histograms of the snapshot (a 1/120 share of its 120 000)."""
    snap = thousand_endpoints.snapshot()
    blobs = [b for b in snap["execution_time_hdr"].to_pylist() if b is not None][:1000]
    peers = [PeerHistogram.decode(base64.b64encode(b)) for b in blobs]
    encoded = benchmark.pedantic(lambda: [h.encode() for h in peers], rounds=3, iterations=1, warmup_rounds=1)
    assert len(encoded) == len(blobs)
    benchmark.extra_info["histograms"] = len(blobs)


# -- the cost of windows during ingest -----------------------------------------------------------


@pytest.fixture(scope="module")
def log(request: pytest.FixtureRequest) -> pa.Table:
    n_jobs = 20_000 if _disabled(request) else 3_300_000
    table = synthetic_events(n_jobs, seed=3, n_endpoints=10, job_ids="int", rate_per_s=1000.0)
    for name in ("endpoint", "state", "kind"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pa.compute.dictionary_encode(table[name]))
    return table


@pytest.mark.parametrize("window", ["60s", "1d"])
@pytest.mark.benchmark(group="ingest-windows")
def test_ingest_with_windows(benchmark: Any, log: pa.Table, window: str) -> None:
    def ingest() -> Aggregator:
        agg = Aggregator(window=window, allowed_lateness="5s", job_capacity=log.num_rows // 3 + 1)
        agg.ingest(log)
        agg.flush()
        return agg

    ingest()  # warm-up
    agg = benchmark.pedantic(ingest, rounds=5, iterations=1)
    totals = [agg.totals(e) for e in agg.endpoints()]
    assert (
        sum(t["requests"] + t["retried"] for t in totals)
        == pa.compute.sum(pa.compute.equal(log["state"].cast(pa.string()), "IN_QUEUE")).as_py()
    )
    benchmark.extra_info["events"] = log.num_rows
