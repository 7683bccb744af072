"""A seeded simulator of serverless endpoints that writes SPEC §1 event logs with ground truth.

Each endpoint has Poisson arrivals modulated by a daily cycle and bursts, a FIFO queue and a
worker pool that scales between its minimum and maximum with cold starts; jobs may fail and be
retried, be cancelled, expire in the queue or hit the execution timeout; workers get throttled
and turn unhealthy; jobs with a webhook call it up to 3 times. The result carries the event table
and the ground truth (every counter and every duration, tallied as events were emitted), so an
aggregation of the log can be checked exactly. See ``docs/simulate.md``.

Examples
--------
>>> from jobmetrics.simulate import simulate
>>> result = simulate(duration="10m", endpoints="sdxl", seed=1)
>>> result.events.column_names
['ts', 'kind', 'endpoint', 'job_id', 'state', 'worker_id', 'status_code']
>>> truth = result.truth["sdxl"]
>>> from jobmetrics import Aggregator
>>> agg = Aggregator()
>>> agg.ingest(result.events)
>>> agg.flush()
>>> agg.totals("sdxl")["completed"] == truth.counters["completed"]
True
>>> agg.histogram("sdxl", "execution_time").total_count == truth.durations["execution_time"].size
True
"""

from __future__ import annotations

import datetime as _dt
import time as _time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..states import JobState, Kind, WorkerState
from ..timeparse import parse_duration, to_epoch_us
from .config import PRESETS, PROFILES, EndpointConfig, HeavyTail, preset, resolve_endpoints
from .delivery import delivery_order
from .engine import EndpointRun, RunOutput
from .truth import COUNTERS, DURATIONS, EndpointTruth, GroundTruth, exact_quantile

__all__ = [
    "COUNTERS",
    "DEFAULT_START",
    "DURATIONS",
    "EVENT_SCHEMA",
    "PRESETS",
    "PROFILES",
    "EndpointConfig",
    "EndpointTruth",
    "GroundTruth",
    "HeavyTail",
    "SimulationResult",
    "endpoint_seed",
    "exact_quantile",
    "preset",
    "resolve_endpoints",
    "simulate",
]

#: Column types of the simulated event table (SPEC §1 names).
EVENT_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("job_id", pa.string()),
        pa.field("state", pa.string()),
        pa.field("worker_id", pa.string()),
        pa.field("status_code", pa.int32()),
    ]
)

#: Default simulation start: Monday 2025-01-06 00:00 UTC (epoch ms).
DEFAULT_START = 1_736_121_600_000

_KIND_NAMES = pa.array([k.name.lower() for k in sorted(Kind)], pa.string())
# job states at 0..5, worker states at 6..11
_STATE_NAMES = pa.array(
    [s.name for s in sorted(JobState)] + [s.name for s in sorted(WorkerState)], pa.string()
)
_N_JOB_STATES = len(JobState)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    events:
        The event log as delivered (with the requested disorder and duplicates), columns of
        :data:`EVENT_SCHEMA`.
    ordered_events:
        The same events in time order without duplicates (``events`` itself when neither
        disorder nor duplicates were asked for).
    truth:
        The :class:`GroundTruth`.
    endpoints:
        The simulated endpoints.
    seed, start_ms, duration_ms, disorder_ms, duplicates:
        The run's parameters (times in ms).
    jobs, workers:
        Jobs submitted and workers started, per endpoint.
    elapsed:
        Wall-clock seconds the simulation took.
    """

    events: pa.Table
    ordered_events: pa.Table
    truth: GroundTruth
    endpoints: tuple[EndpointConfig, ...]
    seed: int
    start_ms: int
    duration_ms: int
    disorder_ms: int
    duplicates: float
    jobs: dict[str, int]
    workers: dict[str, int]
    elapsed: float

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.endpoints)
        return (
            f"SimulationResult(<{self.events.num_rows} events>, endpoints=[{names}], seed={self.seed}, "
            f"duration_ms={self.duration_ms})"
        )


def _start_ms(start: Any) -> int:
    if isinstance(start, int) and not isinstance(start, bool):
        return start
    if isinstance(start, str | _dt.datetime | np.datetime64):
        return to_epoch_us(start, name="start") // 1000
    raise TypeError(f"start must be epoch milliseconds, an ISO-8601 string or a datetime, got {start!r}")


def endpoint_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed sequence of endpoint ``name``: the same whatever other endpoints run beside it."""
    return np.random.SeedSequence([seed, zlib.crc32(name.encode())])


def simulate(
    duration: str | int = "1h",
    endpoints: str | EndpointConfig | Iterable[str | EndpointConfig] | Mapping[str, Any] = "three",
    *,
    seed: int = 0,
    start: str | int | _dt.datetime = DEFAULT_START,
    disorder: str | int | None = None,
    duplicates: float = 0.0,
    rate_scale: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Simulate serverless endpoints and return their event log and ground truth.

    Parameters
    ----------
    duration:
        Simulated span (``"10m"``, ``"1h"``, ``"1d"``, or µs). Requests arrive during it; events
        after it are not emitted, so jobs may be left in flight.
    endpoints:
        A preset name (``"three"``: llm, sdxl, whisper; see :data:`PRESETS`), comma-separated
        profile names (``"llm,embed"``, ``"llm:chat-a"`` renames), :class:`EndpointConfig`
        objects, or a mapping of endpoint name -> config or parameter dict.
    seed:
        The run is a pure function of its parameters; each endpoint's randomness depends on
        ``seed`` and its name only.
    start:
        Start time (epoch ms, ISO-8601 or datetime; default 2025-01-06T00:00Z). The daily cycle
        follows the UTC clock.
    disorder:
        Deliver events out of order: each is delayed by up to this duration (``"2s"``), its ``ts``
        unchanged. Aggregate with ``allowed_lateness`` of at least this much.
    duplicates:
        Fraction of job events delivered twice (same row, own delay).
    rate_scale:
        Multiplies every endpoint's arrival rate (the pool limits stay as configured).
    progress:
        Called now and then with the fraction of the work done (0 … 1).

    Returns
    -------
    SimulationResult
    """
    t_wall = _time.perf_counter()
    span_us = parse_duration(duration, name="duration")
    duration_ms = span_us // 1000
    if duration_ms < 1:
        raise ValueError(f"duration must be at least 1ms, got {duration!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    start_ms = _start_ms(start)
    disorder_ms = 0 if disorder is None else parse_duration(disorder, name="disorder") // 1000
    if not (isinstance(duplicates, int | float) and 0.0 <= duplicates <= 1.0):
        raise ValueError(f"duplicates must be a rate in [0, 1], got {duplicates!r}")
    if not (isinstance(rate_scale, int | float) and rate_scale >= 0):
        raise ValueError(f"rate_scale must be a number >= 0, got {rate_scale!r}")
    configs = resolve_endpoints(endpoints)
    if rate_scale != 1.0:
        configs = tuple(c.replace(rate=c.rate * rate_scale) for c in configs)

    outputs: list[RunOutput] = []
    n = len(configs)
    for i, cfg in enumerate(configs):
        run = EndpointRun(cfg, start_ms, duration_ms, endpoint_seed(seed, cfg.name))
        outputs.append(run.run(None if progress is None else _part(progress, i, n)))

    ts, ep, ordered = _events(outputs, [c.name for c in configs], start_ms)
    events = ordered
    n_dup = 0
    dup_by_ep: dict[str, int] = {}
    if disorder_ms or duplicates:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0D15_0DE5]))
        is_job = pc.equal(ordered["kind"], "job").to_numpy(zero_copy_only=False)
        order, n_dup = delivery_order(ts, is_job, disorder_ms=disorder_ms, duplicates=duplicates, rng=rng)
        events = ordered.take(pa.array(order))
        if n_dup:
            counts = np.bincount(ep[order], minlength=n) - np.bincount(ep, minlength=n)
            dup_by_ep = {c.name: int(counts[k]) for k, c in enumerate(configs)}
    truth = GroundTruth(
        endpoints={o.truth.endpoint: o.truth for o in outputs},
        start_ms=start_ms,
        end_ms=start_ms + duration_ms,
        duplicates=n_dup,
        duplicates_by_endpoint=dup_by_ep,
    )
    return SimulationResult(
        events=events,
        ordered_events=ordered,
        truth=truth,
        endpoints=configs,
        seed=seed,
        start_ms=start_ms,
        duration_ms=duration_ms,
        disorder_ms=disorder_ms,
        duplicates=float(duplicates),
        jobs={c.name: o.jobs for c, o in zip(configs, outputs, strict=True)},
        workers={c.name: o.workers for c, o in zip(configs, outputs, strict=True)},
        elapsed=_time.perf_counter() - t_wall,
    )


def _part(progress: Callable[[float], None], i: int, n: int) -> Callable[[float], None]:
    """Progress of part ``i`` of ``n`` reported as overall progress."""

    def step(fraction: float) -> None:
        progress((i + fraction) / n)

    return step


def _events(
    outputs: list[RunOutput], names: list[str], start_ms: int
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]], pa.Table]:
    """The time-ordered event table of all endpoints, with its ts (epoch ms) and endpoint codes.

    Columns are built one at a time so that only one intermediate column is alive at once.
    """
    ep = np.concatenate([np.full(o.t.size, k, dtype=np.int64) for k, o in enumerate(outputs)])
    ts = np.concatenate([o.t for o in outputs]) + start_ms
    order = np.argsort(ts, kind="stable")  # each endpoint's events are already in time order
    ts, ep = ts[order], ep[order]

    def gather(name: str) -> np.ndarray[Any, Any]:
        return np.concatenate([getattr(o, name) for o in outputs])[order]

    kind = gather("kind")
    ep_names = pa.array(names, pa.string())
    prefix = ep_names.take(pa.array(ep))
    state = gather("state").astype(np.int64)
    state_idx = np.where(kind == Kind.WORKER, state - 1 + _N_JOB_STATES, state - 1)
    del state
    state_col = _STATE_NAMES.take(pa.array(state_idx, mask=kind == Kind.WEBHOOK))
    del state_idx
    job = gather("job")
    job_col = pc.binary_join_element_wise(prefix, pc.cast(pa.array(job, mask=job < 0), pa.string()), "-")
    del job
    worker = gather("worker")
    worker_col = pc.binary_join_element_wise(
        prefix, pc.cast(pa.array(worker, mask=worker < 0), pa.string()), "-w"
    )
    del worker
    status = gather("status")
    columns = [
        pa.array(ts, pa.timestamp("ms", tz="UTC")),
        _KIND_NAMES.take(pa.array(kind.astype(np.int64))),
        prefix,
        job_col,
        state_col,
        worker_col,
        pa.array(status, pa.int32(), mask=status < 0),
    ]
    return ts, ep, pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
