"""Open histograms count in int32 and spill into int64: no count is ever lost or wrapped."""

from __future__ import annotations

import numpy as np

from jobmetrics import Aggregator
from jobmetrics._kernels import layout as L

T0 = 1_700_000_000_000  # ms


def _job(agg: Aggregator, job: str, at_ms: int, delay_ms: int) -> None:
    agg.record(ts=at_ms, endpoint="ep", job_id=job, state="IN_QUEUE")
    agg.record(ts=at_ms + delay_ms, endpoint="ep", job_id=job, state="IN_PROGRESS")


def test_a_count_reaching_int32_max_moves_into_the_spill() -> None:
    agg = Aggregator(window="60s", allowed_lateness="0s")
    _job(agg, "a", T0, 250)
    agg.flush()
    engine = agg._engine
    slots = np.flatnonzero(engine.pool.any(axis=1))
    assert slots.size == 1
    p = int(slots[0])
    k = int(np.flatnonzero(engine.pool[p])[0])
    engine.pool[p, k] = L.SPILL_AT - 2  # as if that many delays of 250 ms had been recorded
    _job(agg, "b", T0 + 1000, 250)
    _job(agg, "c", T0 + 2000, 250)
    agg.flush()
    assert engine.spilled and int(engine.pool[p, k]) == 0
    open_hist = agg.histogram("ep", "delay_time")
    assert open_hist.count_at(250_000) == L.SPILL_AT
    assert open_hist.total_count == L.SPILL_AT
    # closing the window drains the spill into the closed row, and the snapshot reads it
    agg.advance(np.datetime64(T0 + 120_000, "ms"))
    assert agg.histogram("ep", "delay_time").count_at(250_000) == L.SPILL_AT
    counts = agg.snapshot()["delay_time_count"].to_pylist()
    assert counts[0] == sum(counts) == L.SPILL_AT  # later rows: jobs still in progress, no delays
    assert int(engine.spill.sum()) == 0 and int(engine.pool.sum()) == 0
