"""A small runnable example: simulated jobs of two endpoints through an Aggregator."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jobmetrics import Aggregator, HdrHistogram


def simulated_events(n_jobs: int = 20_000, seed: int = 7) -> pa.Table:
    """Jobs arriving at ~50/s on two endpoints; lognormal queue delay and execution; 5 % fail."""
    rng = np.random.default_rng(seed)
    start_ms = 1_700_000_000_000
    arrive = start_ms + np.cumsum(rng.exponential(20.0, n_jobs)).astype(np.int64)
    started = arrive + rng.lognormal(np.log(300), 0.8, n_jobs).astype(np.int64)
    ended = started + rng.lognormal(np.log(4000), 0.6, n_jobs).astype(np.int64)
    outcome = np.where(rng.random(n_jobs) < 0.05, "FAILED", "COMPLETED")
    endpoint = np.where(rng.random(n_jobs) < 0.7, "sdxl-turbo", "whisper-large")
    job_id = np.char.add("job-", np.arange(n_jobs).astype(str))
    table = pa.table(
        {
            "ts": np.concatenate([arrive, started, ended]),
            "endpoint": np.tile(endpoint, 3),
            "job_id": np.tile(job_id, 3),
            "state": np.concatenate([np.full(n_jobs, "IN_QUEUE"), np.full(n_jobs, "IN_PROGRESS"), outcome]),
        }
    )
    return table.sort_by("ts")


def main() -> None:
    agg = Aggregator(window="60s", allowed_lateness="5s")
    agg.ingest(simulated_events())
    agg.flush()
    for endpoint in agg.endpoints():
        m = agg.metrics(endpoint)
        print(f"{endpoint}:")
        print(f"  requests {m['requests']}  completed {m['completed']}  failed {m['failed']}")
        for metric in ("delay_time", "execution_time"):
            p = [m[f"{metric}_{q}_ms"] for q in ("p70", "p90", "p98")]
            print(f"  {metric:<15} P70 {p[0]:8.1f} ms  P90 {p[1]:8.1f} ms  P98 {p[2]:8.1f} ms")
    h = agg.histogram(agg.endpoints()[0], "execution_time")
    print("execution-time histogram as HdrHistogram V2:", h.encode()[:48] + "…")
    assert HdrHistogram.decode(h.encode()) == h


if __name__ == "__main__":
    main()
