"""``Aggregator.save`` / ``Aggregator.restore``: restore-then-continue equals an uninterrupted run.

Streams from ``tests/streams.py`` are cut at random points; at each cut the aggregator is saved
(Arrow IPC or Parquet), restored, and fed the rest. Everything observable must then equal the run
that was never interrupted: the snapshot (exactly), every query, the data-quality counts and the
rejections. Files that are not states, of another version, or damaged raise a clear ValueError.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobmetrics import Aggregator
from jobmetrics._kernels import layout as L
from jobmetrics.persist import FORMAT_VERSION, read_state_info
from reference import Event, Params
from streams import Stream, events_to_table, mixed_streams, synthetic_events

T0 = 1_700_000_000_000  # ms


def aggregator(params: Params, **overrides: Any) -> Aggregator:
    return Aggregator(**{**params.aggregator_options(), **overrides})


def feed(agg: Aggregator, events: list[Event], how: str) -> None:
    if not events:
        return
    if how == "ingest":
        agg.ingest(events_to_table(events))
        return
    for ev in events:
        agg.record(
            ts=ev.ts // 1000,
            endpoint=ev.endpoint,
            job_id=ev.job_id,
            state=ev.state,
            kind=ev.kind,
            worker_id=ev.worker_id,
            status_code=ev.status_code,
        )


def observed(agg: Aggregator) -> dict[str, Any]:
    """Everything a user can read off an aggregator (the snapshot compared separately)."""
    out: dict[str, Any] = {
        "endpoints": agg.endpoints(),
        "watermark": agg.watermark,
        "jobs": agg.jobs_in_memory(),
        "held": agg.held_events(),
        "invalid": agg.invalid_transition_counts(),
        "rejections": (agg.rejections.total, agg.rejections.by_reason, agg.rejections.samples),
    }
    for ep in agg.endpoints():
        out[f"totals {ep}"] = agg.totals(ep)
        out[f"metrics {ep}"] = agg.metrics(ep)
        out[f"last {ep}"] = agg.metrics(ep, last=3 * agg.width)
        out[f"hist {ep}"] = agg.histogram(ep, "execution_time").encode()
    return out


def assert_same(a: Aggregator, b: Aggregator) -> None:
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.equals(sb, check_metadata=True)
    assert observed(a) == observed(b)


def save_restore(agg: Aggregator, path: Path) -> Aggregator:
    agg.save(path)
    restored = Aggregator.restore(path)
    assert repr(restored) == repr(agg)
    assert_same(restored, agg)  # nothing lost in the file
    return restored


@given(
    stream=mixed_streams(span_ms=150_000, max_jobs=14),
    cuts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3),
    how=st.sampled_from(["ingest", "record"]),
    parquet=st.booleans(),
)
def test_restore_then_continue_equals_an_uninterrupted_run(
    stream: Stream, cuts: list[float], how: str, parquet: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = stream.arrival
    points = sorted({int(c * len(events)) for c in cuts})
    bounds = [0, *points, len(events)]
    chunks = [events[a:b] for a, b in itertools.pairwise(bounds)]

    straight = aggregator(stream.params)  # with record, it drains only when its stage is full
    for chunk in chunks:
        feed(straight, chunk, how)

    folder = tmp_path_factory.mktemp("state")
    path = folder / ("state.parquet" if parquet else "state.arrow")
    resumed = aggregator(stream.params)
    for i, chunk in enumerate(chunks):
        if i:  # a cut: save, forget the aggregator, restore, continue
            resumed = save_restore(resumed, path)
        feed(resumed, chunk, how)

    assert_same(resumed, straight)  # before flush: open windows, held events, jobs in flight
    straight.flush()
    resumed.flush()
    assert_same(resumed, straight)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_synthetic_stream_cut_at_random_points(seed: int, fmt: str, tmp_path: Path) -> None:
    """A realistic stream (retries, cancellations, jobs left in flight, disorder within the
    lateness, closed windows forgotten by ``history``) cut at three random points."""
    table = synthetic_events(
        4_000, seed=seed, n_endpoints=5, rate_per_s=20.0, in_flight_rate=0.05, jitter_ms=3_000
    )
    options: dict[str, Any] = {
        "window": timedelta(seconds=30),
        "allowed_lateness": "4s",
        "retention": "2m",
        "job_ttl": "10m",
        "sweep_interval": "20s",
        "history": "30m",
        "quantiles": (0.5, 0.99, 0.999),
    }
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, table.num_rows), 3))
    bounds = [0, *cuts, table.num_rows]
    straight = Aggregator(**options)
    resumed = Aggregator(**options)
    path = tmp_path / f"state.{fmt}"
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        straight.ingest(table.slice(a, b - a))
        if i:
            resumed.save(path, format=fmt)  # type: ignore[arg-type]
            resumed = Aggregator.restore(path)
        resumed.ingest(table.slice(a, b - a))
        assert_same(resumed, straight)
    assert len(straight.snapshot()) > 40  # many windows, some dropped by history
    for agg in (straight, resumed):
        agg.tick(T0 + 10 * 3_600_000)  # processing time moves on: every window closes
    assert_same(resumed, straight)
    assert resumed.snapshot()["final"].to_pylist() == [True] * len(resumed.snapshot())


def test_rejections_workers_and_spill_survive(tmp_path: Path) -> None:
    agg = Aggregator(window="60s", allowed_lateness="0s")
    bad = pa.table(
        {
            "ts": [T0, T0 + 1, None, T0 + 2],
            "endpoint": ["a", "a", "a", "b"],
            "job_id": ["j1", "j1", "j2", None],
            "state": ["IN_QUEUE", "NOPE", "IN_QUEUE", "IN_QUEUE"],
        }
    )
    agg.ingest(bad)
    agg.record(ts=T0 + 5, endpoint="a", kind="worker", worker_id="w1", state="INITIALIZING")
    agg.record(ts=T0 + 900, endpoint="a", kind="worker", worker_id="w1", state="IDLE")
    agg.record(ts=T0 + 1000, endpoint="a", job_id="j1", state="IN_PROGRESS")
    agg.flush()
    engine = agg._engine  # a count about to reach the int32 limit: moves into the int64 spill
    row = int(np.flatnonzero(engine.rows[:, L.R_EP] == 0)[0])
    p = int(engine.rows[row, L.R_HIST + L.M_DELAY])  # j1's delay of 1 s: j3 waits 1 s too
    k = int(np.flatnonzero(engine.pool[p])[0])
    engine.pool[p, k] = L.SPILL_AT - 1
    agg.record(ts=T0 + 2000, endpoint="a", job_id="j3", state="IN_QUEUE")
    agg.record(ts=T0 + 3000, endpoint="a", job_id="j3", state="IN_PROGRESS")
    agg.record(ts=T0 + 4000, endpoint="a", job_id="j1", state="COMPLETED")
    agg.flush()
    assert engine.spilled
    restored = save_restore(agg, tmp_path / "s.arrow")
    assert restored.rejections.total == 3 and str(restored.rejections) == str(agg.rejections)
    assert restored.metrics("a")["cold_start_time_count"] == 1
    for a in (agg, restored):
        a.record(ts=T0 + 200_000, endpoint="a", kind="worker", worker_id="w1", state="OFFLINE")
        a.flush()
    assert_same(restored, agg)


def test_state_info_and_options(tmp_path: Path) -> None:
    agg = Aggregator(
        window=timedelta(minutes=1),
        allowed_lateness=None,
        job_ttl=np.timedelta64(2, "h"),  # type: ignore[arg-type]
        orphans="drop",
        staging_size=77,
    )
    agg.record(ts=T0, endpoint="a", job_id="j", state="IN_QUEUE")
    agg.save(tmp_path / "s.arrow")
    info = read_state_info(tmp_path / "s.arrow")
    assert info["version"] == FORMAT_VERSION
    assert info["options"]["window"] == 60_000_000 and info["options"]["allowed_lateness"] is None
    assert info["options"]["job_ttl"] == 7_200_000_000
    assert info["endpoints"] == ["a"] and info["staging_size"] == 77
    restored = Aggregator.load(tmp_path / "s.arrow")
    assert restored._staging_size == 77 and restored.held_events() == 1  # held until flush
    restored.flush()
    assert restored.totals("a")["requests"] == 1


def test_save_on_an_empty_aggregator(tmp_path: Path) -> None:
    agg = Aggregator()
    restored = save_restore(agg, tmp_path / "empty.parquet")
    assert restored.watermark is None and restored.snapshot().num_rows == 0


# -- bad files -------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    agg = Aggregator(window="10s", allowed_lateness="1s")
    agg.ingest(synthetic_events(300, seed=3, rate_per_s=50.0, in_flight_rate=0.2))
    path = tmp_path / "good.arrow"
    agg.save(path)
    return path


def rewrite(
    source: Path, target: Path, *, info: dict[str, Any] | None = None, table: pa.Table | None = None
) -> None:
    with pa.memory_map(str(source)) as f:
        t = pa.ipc.open_file(f).read_all() if table is None else table
    if info is not None:
        t = t.replace_schema_metadata({b"jobmetrics.state": json.dumps(info).encode()})
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
        w.write_table(t)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Aggregator.restore(tmp_path / "nope.arrow")


def test_not_a_state_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"not a jobmetrics state file.*neither Arrow IPC nor Parquet"):
        Aggregator.restore(text)
    snapshot = tmp_path / "snapshot.parquet"  # a Parquet file, but a snapshot, not a state
    pq.write_table(Aggregator().snapshot(), snapshot)
    with pytest.raises(ValueError, match=r"not a jobmetrics state file.*no 'jobmetrics\.state' metadata"):
        Aggregator.restore(snapshot)


def test_other_format_version(saved: Path, tmp_path: Path) -> None:
    info = read_state_info(saved)
    bad = tmp_path / "future.arrow"
    rewrite(saved, bad, info={**info, "version": FORMAT_VERSION + 1})
    with pytest.raises(
        ValueError, match=f"format version {FORMAT_VERSION + 1}.*reads version {FORMAT_VERSION}"
    ):
        Aggregator.restore(bad)
    rewrite(saved, bad, info={**info, "format": "something-else"})
    with pytest.raises(ValueError, match=r"not a jobmetrics state file \(format 'something-else'\)"):
        Aggregator.restore(bad)


def test_truncated_file(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    bad = tmp_path / "truncated.arrow"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"damaged jobmetrics state file"):
        Aggregator.restore(bad)


def test_a_flipped_byte_fails_the_checksum(saved: Path, tmp_path: Path) -> None:
    with pa.memory_map(str(saved)) as f:
        table = pa.ipc.open_file(f).read_all()
    blobs = table.column("data").to_pylist()
    i = table.column("name").to_pylist().index("engine.rows")
    blob = bytearray(blobs[i])
    blob[len(blob) // 2] ^= 0x40
    blobs[i] = bytes(blob)
    columns = [table.column(c) for c in table.column_names[:-1]] + [pa.array(blobs, pa.large_binary())]
    bad = tmp_path / "flipped.arrow"
    rewrite(saved, bad, table=pa.table(columns, schema=table.schema))
    with pytest.raises(ValueError, match=r"array 'engine\.rows' fails its checksum"):
        Aggregator.restore(bad)


def test_missing_array(saved: Path, tmp_path: Path) -> None:
    with pa.memory_map(str(saved)) as f:
        table = pa.ipc.open_file(f).read_all()
    keep = [n != "engine.st" for n in table.column("name").to_pylist()]
    bad = tmp_path / "missing.arrow"
    rewrite(saved, bad, table=table.filter(pa.array(keep)))
    with pytest.raises(ValueError, match=r"damaged jobmetrics state file.*engine state lacks 'st'"):
        Aggregator.restore(bad)


def test_bad_format_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format must be 'arrow' or 'parquet', got 'csv'"):
        Aggregator().save(tmp_path / "x", format="csv")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_a_failed_save_keeps_the_previous_file(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved.read_bytes()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pa.ipc, "new_file", broken)
    with pytest.raises(OSError, match="disk full"):
        Aggregator().save(saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary file left


def test_worker_time_survives_a_clock_roll_that_stops_for_room() -> None:
    """Rolling the clock over more windows than an endpoint's ring of open rows holds stops for
    room; the windows already rolled must not lose their worker-µs when the roll resumes, or a
    batch boundary (and so a save) would move a window's worker time elsewhere."""
    from reference import run

    base = 1_700_000_000_000_000
    params = Params(window_us=1_000_000, allowed_lateness_us=0, sweep_interval_us=2_000_000,
                    orphans="drop", worker_ttl_us=30_000_000)  # fmt: skip
    events = [
        Event(base + 1_261_000, "sdxl", "job-3", "IN_QUEUE"),
        Event(base + 1_262_000, "llama", "job-2", "IN_QUEUE"),  # in flight: llama has a row per window
        Event(base + 3_032_000, "sdxl", "job-3", "CANCELLED"),
        Event(base + 179_861_000, "sdxl", None, "INITIALIZING", kind="worker", worker_id="w-0"),
        Event(base + 219_000_000, "sdxl", None, "THROTTLED", kind="worker", worker_id="w-0"),
    ]
    want = {
        (ep, start): row.counts["workers_initializing_us"]
        for (ep, start), row in run(events, params).snapshot().items()
    }
    for cut in (None, 3):
        agg = aggregator(params)
        parts = [events] if cut is None else [events[:cut], events[cut:]]
        for part in parts:
            agg.ingest(events_to_table(part))
        agg.flush()
        table = agg.snapshot()
        starts = table["window_start"].cast(pa.int64()).to_pylist()
        got = dict(zip(zip(table["endpoint"].to_pylist(), starts, strict=True),
                       table["workers_initializing_us"].to_pylist(), strict=True))  # fmt: skip
        assert got == want
        assert sum(got.values()) == 210_000_000 - 179_861_000  # initializing until lost at 210 s


def test_save_while_threads_record(tmp_path: Path) -> None:
    """Saves taken while four threads record each capture one moment: a restored state holds some
    R events, and feeding it every event again gives all N requests and exactly R duplicates."""
    import threading

    n_threads, per_thread = 4, 5_000
    agg = Aggregator(window="10s", allowed_lateness=None, staging_size=250)

    def events(k: int) -> list[tuple[int, str, str]]:
        return [(T0 + i, f"ep{k}", f"{k}-{i}") for i in range(per_thread)]

    def write(k: int) -> None:
        for ts, endpoint, job in events(k):
            agg.record(ts=ts, endpoint=endpoint, job_id=job, state="IN_QUEUE")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    paths: list[Path] = []
    while any(t.is_alive() for t in threads) or not paths:
        paths.append(tmp_path / f"s{len(paths)}.arrow")
        agg.save(paths[-1])
    for t in threads:
        t.join()
    for path in [paths[0], paths[len(paths) // 2], paths[-1]]:
        restored = Aggregator.restore(path)
        seen = restored.held_events()  # allowed_lateness=None: nothing applied before flush
        for k in range(n_threads):
            for ts, endpoint, job in events(k):
                restored.record(ts=ts, endpoint=endpoint, job_id=job, state="IN_QUEUE")
        restored.flush()
        totals = [restored.totals(ep) for ep in restored.endpoints()]
        assert sum(t["requests"] for t in totals) == n_threads * per_thread
        assert sum(t["duplicates"] for t in totals) == seen


def test_lifetime_sums_survive_a_restart(tmp_path: Path) -> None:
    """With ``history=``, the sums of dropped windows are part of the state: a restored aggregator
    continues with the lifetime totals and histograms of an uninterrupted run without history."""
    events = synthetic_events(900, seed=8, n_endpoints=2, rate_per_s=0.5, in_flight_rate=0.05)
    half = events.num_rows // 2
    full = Aggregator(window="60s", allowed_lateness="5s")
    bounded = Aggregator(window="60s", allowed_lateness="5s", history="3m")
    for a in (full, bounded):
        a.ingest(events.slice(0, half))
    assert bounded.memory_bytes()["lifetime"] > 0  # windows were dropped already
    restored = save_restore(bounded, tmp_path / "bounded.arrow")
    for a in (full, bounded, restored):
        a.ingest(events.slice(half))
        a.flush()
    assert_same(restored, bounded)
    for e in full.endpoints():
        assert restored.totals(e) == full.totals(e)
        for m in ("execution_time", "delay_time", "cold_start_time"):
            assert restored.histogram(e, m, lifetime=True) == full.histogram(e, m)


def test_reads_a_version_1_state(tmp_path: Path) -> None:
    """A state written before lifetime sums existed (format version 1) restores, with none."""
    agg = Aggregator(window="10s", allowed_lateness="1s")
    agg.ingest(synthetic_events(300, seed=3, rate_per_s=50.0, in_flight_rate=0.2))
    path, old = tmp_path / "v2.arrow", tmp_path / "v1.arrow"
    agg.save(path)
    with pa.memory_map(str(path)) as f:
        table = pa.ipc.open_file(f).read_all()
    names = table.column("name").to_pylist()
    v1 = table.filter(pa.array([not n.startswith("engine.lifetime.") for n in names]))
    assert v1.num_rows == table.num_rows - 2
    rewrite(path, old, info={**read_state_info(path), "version": 1}, table=v1)
    assert_same(Aggregator.restore(old), agg)
    rewrite(path, old, info=read_state_info(path), table=v1)  # version 2 without them: damaged
    with pytest.raises(ValueError, match="no lifetime sums"):
        Aggregator.restore(old)


def test_lifetime_sums_round_trip_and_refuse_bad_arrays() -> None:
    """The sparse lifetime sums give the dense sums of the blocks added, and survive state() /
    load_state(); arrays pointing outside their endpoints, metrics or buckets are refused."""
    from jobmetrics.windows import Lifetime, RowBlock

    rng = np.random.default_rng(2)
    n_len, n_values = 50, 4
    dense = np.zeros((3, 3, n_len), dtype=np.int64)
    life = Lifetime(n_len, n_values, 3)
    for _ in range(4):
        n = 5
        eps = rng.integers(0, 3, n).astype(np.int32)
        rows, idx, cnt = [], [], []
        for m in range(3):
            r = rng.integers(0, n, 20).astype(np.int32)
            i = rng.integers(0, n_len, 20).astype(np.int32)
            c = rng.integers(1, 1_000, 20).astype(np.int64)
            np.add.at(dense[:, m], (eps[r], i), c)
            rows.append(r)
            idx.append(i)
            cnt.append(c)
        values = np.ones((n, n_values), dtype=np.int64)
        life.add(RowBlock(eps, np.zeros(n, np.int64), values, tuple(rows), tuple(idx), tuple(cnt)))
    again = Lifetime(n_len, n_values, 3)
    state = life.state()
    again.load_state(state["lifetime.values"], state["lifetime.hist"])
    for e in range(3):
        for m in range(3):
            for sums in (life, again):
                got = sums.hist_of(e, m)
                assert got is not None and np.array_equal(got, dense[e, m])
    assert life.hist_of(7, 0) is None and life.values_of(7).tolist() == [0] * n_values
    assert np.array_equal(again.values, life.values) and life.values.sum() == 4 * 5 * n_values
    bad = state["lifetime.hist"].copy()
    bad[2, 0] = n_len  # a bucket beyond the geometry
    with pytest.raises(ValueError, match="outside"):
        again.load_state(state["lifetime.values"], bad)
