"""CPU time per ``Aggregator.record`` event, from 1, 2, 4 and 8 threads (less sensitive to a busy
machine than wall time: other processes' time is not counted).

The workload and threads are those of ``bench_record.py`` (200 000 job events; threads meet at a
barrier every 2 s of event time). For each thread count, seven rounds; prints the median and the
minimum of the process CPU time (all threads, user + system) and of the wall time, per event.

    python benchmarks/record_cpu.py
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_record import N_ENDPOINTS, N_EVENTS, RATE_PER_S, Feeders, Row, check_record, shares
from jobmetrics import Aggregator
from streams import synthetic_events

ROUNDS = 7


def workload() -> list[Row]:
    table = synthetic_events(
        N_EVENTS // 3 + 100, seed=9, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, job_ids="uuid"
    ).slice(0, N_EVENTS)
    columns = [table.column(c).to_pylist() for c in ("ts", "endpoint", "job_id", "state")]
    return list(zip(*columns, strict=True))


def one_round(parts: list[list[list[Row]]]) -> tuple[float, float, Aggregator]:
    n_threads, n_blocks = len(parts), len(parts[0])
    agg = Aggregator(window="60s", allowed_lateness="5s")
    barrier = threading.Barrier(n_threads)

    def work(k: int) -> None:
        record = agg.record
        for b in range(n_blocks):
            barrier.wait()
            for ts, endpoint, job_id, state in parts[k][b]:
                record(ts=ts, endpoint=endpoint, job_id=job_id, state=state)

    feeders = Feeders(work, n_threads)
    cpu, wall = time.process_time(), time.perf_counter()
    feeders.run()
    agg.flush()
    return time.process_time() - cpu, time.perf_counter() - wall, agg


def main() -> None:
    events = workload()
    n = len(events)
    print(f"{n} events, {ROUNDS} rounds; µs per event: CPU median (min), wall median (min)")
    for n_threads in (1, 2, 4, 8):
        parts = shares(events, n_threads)
        one_round(parts)  # warm-up
        cpu, wall = [], []
        for _ in range(ROUNDS):
            c, w, agg = one_round(parts)
            cpu.append(c / n * 1e6)
            wall.append(w / n * 1e6)
        check_record(agg, events)
        print(
            f"{n_threads} thread{'s' if n_threads > 1 else ' '}: CPU {statistics.median(cpu):.3f} "
            f"({min(cpu):.3f}), wall {statistics.median(wall):.3f} ({min(wall):.3f})"
        )


if __name__ == "__main__":
    main()
