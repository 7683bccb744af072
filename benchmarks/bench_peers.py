"""Throughput of jobmetrics' HdrHistogram against the sketches of the accuracy study.

One group per operation; every sketch of a group runs on the same seeded workload (durations in
µs from ``lognormal(ln(2e5), 1)``, as in ``bench_hdr.py``), and every benchmark checks its result,
so ``--benchmark-disable`` (small sizes, one run each) still tests something.

* ``peers-insert-one``: the per-value API in a Python loop of 1 000 values (jobmetrics'
  ``record(int)``, ``record_value``, ``add``, ``update``).
* ``peers-insert-batch``: the fastest way each library takes an array: jobmetrics'
  ``record(array)`` and fastdigest's ``batch_update`` on 1 M values; hdrhistogram and ddsketch have
  no batch API (a loop of per-value calls, on a 100 k subset) and tdigest's ``batch_update`` is a
  Python loop (on a 10 k subset): compare them per value (``extra_info["ns_per_value"]``).
* ``peers-merge``: merge one sketch of 100 k values into another (a fresh copy each round).
* ``peers-quantiles``: the study's eight quantiles from a 100 k-value sketch.
* ``peers-encode`` / ``peers-decode``: each library's serialised form (see
  ``benchmarks/accuracy/sketches.py``) of that sketch.

Run::

    pytest benchmarks/bench_peers.py --benchmark-only --benchmark-group-by=group \\
        --benchmark-columns=min,median,mean,stddev,ops

``python -m benchmarks.report`` runs this file and turns its JSON into the tables and bar plots of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from benchmarks.accuracy import QUANTILES, relative_errors
from benchmarks.accuracy.sketches import (
    DDSketchAdapter,
    FastDigestAdapter,
    HdrhAdapter,
    JobmetricsAdapter,
    Sketch,
    TDigestAdapter,
)

pytest.importorskip("hdrh.histogram")
pytest.importorskip("ddsketch")
pytest.importorskip("fastdigest")
pytest.importorskip("tdigest")

N_ONE = 1_000  # insert-one: values per timed call
N_BATCH = 1_000_000  # insert-batch with a batch API
N_LOOP = 100_000  # insert-batch: libraries without one (a per-value loop)
N_PURE = 10_000  # insert-batch: tdigest's batch_update (a Python loop)
N_SKETCH = 100_000  # merge, quantiles, encode, decode: sketches of this many values

SKETCHES: list[Sketch] = [
    JobmetricsAdapter(2),
    HdrhAdapter(),
    DDSketchAdapter(0.01),
    FastDigestAdapter(),
    TDigestAdapter(),
]
IDS = [s.key for s in SKETCHES]

#: Worst relative error each sketch may show on the lognormal workload (t-digest has no bound:
#: a loose sanity limit).
ERROR_LIMIT = {
    "jobmetrics-2": 1 / 128,
    "hdrhistogram": 1 / 128,
    "ddsketch": 0.01,
    "fastdigest": 0.05,
    "tdigest": 0.05,
}


def _lognormal(n: int, seed: int) -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=math.log(2e5), sigma=1.0, size=n).astype(np.int64)


def _info(benchmark: Any, sketch: Sketch, n: int, per_value: Callable[..., None], note: str = "") -> None:
    per_value(benchmark, n, sketch=sketch.key, label=sketch.label, note=note)


def _check_quantiles(sketch: Sketch, built: Any, values: npt.NDArray[np.int64]) -> None:
    errors = relative_errors(np.sort(values), sketch.quantiles(built, QUANTILES), QUANTILES)
    worst = float(errors.max())
    assert worst <= ERROR_LIMIT[sketch.key], f"{sketch.key}: worst relative error {worst:.4f}"


@pytest.fixture(scope="module")
def workload(sized: Callable[[int], int]) -> npt.NDArray[np.int64]:
    return _lognormal(sized(N_BATCH), seed=20240601)


@pytest.fixture(scope="module")
def pair(sized: Callable[[int], int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    n = sized(N_SKETCH)
    return _lognormal(n, seed=11), _lognormal(n, seed=12)


_BUILT: dict[tuple[str, int], tuple[Any, Any]] = {}


def _built_pair(sketch: Sketch, pair: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]) -> tuple[Any, Any]:
    """The two sketches of ``pair`` (built once per module run: tdigest takes a while)."""
    key = (sketch.key, pair[0].shape[0])
    if key not in _BUILT:
        _BUILT[key] = (sketch.build(pair[0]), sketch.build(pair[1]))
    return _BUILT[key]


# ------------------------------------------------------------------------------ insertion


@pytest.mark.benchmark(group="peers-insert-one")
@pytest.mark.parametrize("sketch", SKETCHES, ids=IDS)
def test_insert_one(
    benchmark: Any, sketch: Sketch, workload: npt.NDArray[np.int64], per_value: Callable[..., None]
) -> None:
    values = workload[:N_ONE].tolist()
    target = sketch.new()
    insert = sketch.insert_one
    insert(target, values[0])  # warm-up (numba loads its kernels on the first call)

    def loop() -> None:
        for v in values:
            insert(target, v)

    benchmark(loop)
    _info(benchmark, sketch, len(values), per_value, "Python loop of the per-value call")
    fresh = sketch.new()
    for v in values:
        insert(fresh, v)
    assert sketch.count(fresh) == len(values)
    assert (sketch.count(target) - 1) % len(values) == 0


def _batch_size(sketch: Sketch, sized: Callable[[int], int]) -> int:
    if sketch.key == "tdigest":
        return sized(N_PURE)
    return sized(N_BATCH) if sketch.has_batch else sized(N_LOOP)


@pytest.mark.benchmark(group="peers-insert-batch")
@pytest.mark.parametrize("sketch", SKETCHES, ids=IDS)
def test_insert_batch(
    benchmark: Any,
    sketch: Sketch,
    workload: npt.NDArray[np.int64],
    sized: Callable[[int], int],
    per_value: Callable[..., None],
) -> None:
    values = workload[: _batch_size(sketch, sized)]
    sketch.insert_batch(sketch.new(), values[:100])  # warm-up
    holder: list[Any] = []

    def fresh() -> tuple[tuple[Any], dict[str, Any]]:
        target = sketch.new()
        holder.append(target)
        return (target,), {}

    def insert(target: Any) -> None:
        sketch.insert_batch(target, values)

    rounds = 20 if values.shape[0] == sized(N_BATCH) else 5
    benchmark.pedantic(insert, setup=fresh, rounds=rounds, warmup_rounds=0)
    _info(benchmark, sketch, int(values.shape[0]), per_value, sketch.batch_note)
    assert sketch.count(holder[-1]) == values.shape[0]
    _check_quantiles(sketch, holder[-1], values)


# ------------------------------------------------------------------------------ merge


@pytest.mark.benchmark(group="peers-merge")
@pytest.mark.parametrize("sketch", SKETCHES, ids=IDS)
def test_merge(
    benchmark: Any, sketch: Sketch, pair: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
) -> None:
    a, b = _built_pair(sketch, pair)
    data_a = sketch.serialize(a)
    sketch.merge(sketch.deserialize(data_a), b)  # warm-up
    holder: list[Any] = []

    def fresh() -> tuple[tuple[Any, Any], dict[str, Any]]:
        return (sketch.deserialize(data_a), b), {}

    def merge(x: Any, y: Any) -> None:
        holder.append(sketch.merge(x, y))

    benchmark.pedantic(merge, setup=fresh, rounds=20, warmup_rounds=0)
    benchmark.extra_info.update(sketch=sketch.key, label=sketch.label, values=2 * pair[0].shape[0])
    merged = holder[-1]
    assert sketch.count(merged) == 2 * pair[0].shape[0]
    _check_quantiles(sketch, merged, np.concatenate(pair))


# ------------------------------------------------------------------------------ queries


@pytest.mark.benchmark(group="peers-quantiles")
@pytest.mark.parametrize("sketch", SKETCHES, ids=IDS)
def test_quantiles(
    benchmark: Any, sketch: Sketch, pair: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
) -> None:
    a, _ = _built_pair(sketch, pair)
    sketch.quantiles(a, QUANTILES)  # warm-up
    got = benchmark(sketch.quantiles, a, QUANTILES)
    benchmark.extra_info.update(sketch=sketch.key, label=sketch.label, quantiles=len(QUANTILES))
    assert got.shape == (len(QUANTILES),)
    assert np.all(np.diff(got) >= 0)
    _check_quantiles(sketch, a, pair[0])


# ------------------------------------------------------------------------------ encode / decode


@pytest.mark.benchmark(group="peers-encode")
@pytest.mark.parametrize("sketch", SKETCHES, ids=IDS)
def test_encode(
    benchmark: Any, sketch: Sketch, pair: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
) -> None:
    a, _ = _built_pair(sketch, pair)
    sketch.serialize(a)  # warm-up
    data = benchmark(sketch.serialize, a)
    benchmark.extra_info.update(sketch=sketch.key, label=sketch.label, bytes=len(data))
    back = sketch.deserialize(data)
    assert sketch.count(back) == sketch.count(a)
    np.testing.assert_allclose(sketch.quantiles(back, QUANTILES), sketch.quantiles(a, QUANTILES), rtol=1e-9)


@pytest.mark.benchmark(group="peers-decode")
@pytest.mark.parametrize("sketch", SKETCHES, ids=IDS)
def test_decode(
    benchmark: Any, sketch: Sketch, pair: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
) -> None:
    a, _ = _built_pair(sketch, pair)
    data = sketch.serialize(a)
    sketch.deserialize(data)  # warm-up
    back = benchmark(sketch.deserialize, data)
    benchmark.extra_info.update(sketch=sketch.key, label=sketch.label, bytes=len(data))
    assert sketch.count(back) == pair[0].shape[0]
    np.testing.assert_allclose(sketch.quantiles(back, QUANTILES), sketch.quantiles(a, QUANTILES), rtol=1e-9)
