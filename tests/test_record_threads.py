"""``record`` from several threads loses and interleaves nothing."""

from __future__ import annotations

import threading

from jobmetrics import Aggregator


def test_threads_record_exactly_what_one_thread_records() -> None:
    n_threads, per_thread = 4, 20_000
    t0 = 1_700_000_000_000

    def events(k: int) -> list[tuple[int, str, str]]:
        out = []
        for i in range(per_thread // 2):
            job = f"t{k}-j{i}"
            out.append((t0 + i, job, "IN_QUEUE"))
            out.append((t0 + i + 1, job, "IN_PROGRESS"))
        return out

    def feed(agg: Aggregator, k: int, barrier: threading.Barrier | None) -> None:
        if barrier is not None:
            barrier.wait()
        for ts, job, state in events(k):
            agg.record(ts=ts, endpoint=f"ep{k % 2}", job_id=job, state=state)

    shared = Aggregator(window="60s", allowed_lateness="1h", staging_size=1000)
    barrier = threading.Barrier(n_threads)
    threads = [threading.Thread(target=feed, args=(shared, k, barrier)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared.flush()

    single = Aggregator(window="60s", allowed_lateness="1h", staging_size=1000)
    for k in range(n_threads):
        feed(single, k, None)
    single.flush()

    for endpoint in ("ep0", "ep1"):
        got, want = shared.totals(endpoint), single.totals(endpoint)
        assert got == want
        assert got["requests"] == n_threads // 2 * per_thread // 2
        assert got["in_progress"] == got["requests"]
        assert got["invalid_transitions"] == got["orphans"] == got["duplicates"] == 0
        assert shared.histogram(endpoint, "delay_time") == single.histogram(endpoint, "delay_time")
