"""Wall, user and system time of repeated ``ingest-int`` rounds (a diagnostic, not a pytest benchmark).

Run: ``python benchmarks/rounds_user_sys.py``. Each round ingests the 10 M-event log of
``bench_ingest.py`` into a fresh Aggregator; the user time shows the library's work, the system
time the operating system's handling of the freshly allocated tables.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import Aggregator
from streams import synthetic_events


def main(rounds: int = 7) -> None:
    table = synthetic_events(3_300_000, seed=3, n_endpoints=10, job_ids="int", rate_per_s=1000.0)
    for name in ("endpoint", "state", "kind"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table[name]))
    previous = None
    for _ in range(rounds):
        agg = Aggregator(window="60s", allowed_lateness="5s", job_capacity=3_300_000)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        agg.ingest(table)
        agg.flush()
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
        rate = table.num_rows / wall / 1e6
        print(f"wall {wall:.3f} s  user {user:.3f} s  sys {system:.3f} s  ({rate:.1f} M events/s)")
        previous = agg  # keep one alive, as pytest-benchmark's rounds do
    del previous


if __name__ == "__main__":
    main()
