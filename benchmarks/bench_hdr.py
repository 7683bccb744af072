"""HdrHistogram benchmarks: jobmetrics against numpy, ``hdrhistogram`` and ``ddsketch``.

Each group holds jobmetrics and its baselines on the same seeded workload. Every benchmark calls
its target once before timing (numba loads or compiles kernels on the first call) and asserts its
result, so ``--benchmark-disable`` (smaller sizes, one run each) still checks correctness.

Run::

    pytest benchmarks/bench_hdr.py --benchmark-only -p no:randomly --benchmark-group-by=group \\
        --benchmark-columns=min,median,mean,stddev,ops

Workloads: durations in microseconds drawn from ``lognormal(mean=ln(2e5), sigma=1.0)`` (median
200 ms, P99 ~2 s) into ``HdrHistogram(1, 3_600_000_000, 2)`` (1 µs to one hour, 2 figures).
"""

from __future__ import annotations

import binascii
import math
import struct
import zlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from jobmetrics import HdrHistogram
from jobmetrics.geometry import Geometry

hdrh_histogram = pytest.importorskip("hdrh.histogram")
ddsketch = pytest.importorskip("ddsketch")
PyHdrHistogram = hdrh_histogram.HdrHistogram

GEOMETRY = (1, 3_600_000_000, 2)
QUANTILES = (0.7, 0.9, 0.98)
PERCENTILES = (70.0, 90.0, 98.0)

N_BATCH = 10_000_000  # record-batch: one array
N_PEER_LOOP = 100_000  # record-batch: hdrhistogram's per-value loop runs on this subset
N_ONE = 1_000  # record-one: values per timed call (a Python loop of single records)
N_QUERY = 1_000_000  # quantiles, encode, decode, merge: histograms of this many values


def _lognormal(n: int, seed: int) -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=math.log(2e5), sigma=1.0, size=n).astype(np.int64)


def _numpy_counts_index(values: npt.NDArray[np.int64], g: Geometry) -> npt.NDArray[np.int64]:
    """HdrHistogram's counts index in plain numpy (bit length from frexp: exact below 2**53)."""
    assert int(values.max()) < 2**53
    um, hm = g.unit_magnitude, g.half_magnitude
    masked = values | np.int64(((1 << (hm + 1)) - 1) << um)
    bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - um - hm - 1
    return ((bucket + 1) << hm) + (values >> (bucket + um)) - (1 << hm)


def _hist(values: npt.NDArray[np.int64]) -> HdrHistogram:
    h = HdrHistogram(*GEOMETRY)
    h.record(values)
    return h


@pytest.fixture(scope="module")
def batch(sized: Callable[[int], int]) -> npt.NDArray[np.int64]:
    return _lognormal(sized(N_BATCH), seed=20240601)


@pytest.fixture(scope="module")
def batch_hist(batch: npt.NDArray[np.int64]) -> HdrHistogram:
    """The batch recorded once: the expected counts of every record-batch benchmark."""
    return _hist(batch)


@pytest.fixture(scope="module")
def query_values(sized: Callable[[int], int]) -> npt.NDArray[np.int64]:
    return _lognormal(sized(N_QUERY), seed=7)


@pytest.fixture(scope="module")
def query_hist(query_values: npt.NDArray[np.int64]) -> HdrHistogram:
    h = _hist(query_values)
    assert h.total_count == query_values.shape[0]
    return h


@pytest.fixture(scope="module")
def query_peer(query_hist: HdrHistogram) -> object:
    """The same histogram in ``hdrhistogram`` (through the V2 encoding; counts checked equal)."""
    peer = PyHdrHistogram.decode(query_hist.encode())
    assert peer.get_total_count() == query_hist.total_count
    counts = np.asarray(peer.counts[: peer.counts_len])
    np.testing.assert_array_equal(counts, query_hist.counts)
    return peer


# ------------------------------------------------------------------------------ record-batch


@pytest.mark.benchmark(group="record-batch")
def test_record_batch_jobmetrics(
    benchmark, batch: npt.NDArray[np.int64], batch_hist: HdrHistogram, per_value
) -> None:
    h = HdrHistogram(*GEOMETRY)
    h.record(batch[:1000])  # warm-up: loads the compiled kernel
    benchmark.pedantic(h.record, args=(batch,), setup=h.reset, rounds=10, warmup_rounds=1)
    per_value(benchmark, batch.shape[0])
    assert h.total_count == batch.shape[0]
    assert h == batch_hist
    np.testing.assert_array_equal(h.counts, batch_hist.counts)


@pytest.mark.benchmark(group="record-batch")
def test_record_batch_numpy_bincount_floor(
    benchmark, batch: npt.NDArray[np.int64], batch_hist: HdrHistogram, per_value
) -> None:
    """``np.bincount`` of precomputed bucket indices: counting alone, no index arithmetic."""
    g = batch_hist.geometry
    indices = _numpy_counts_index(batch, g)
    np.bincount(indices[:1000], minlength=g.counts_len)  # warm-up
    counts = benchmark.pedantic(
        np.bincount,
        args=(indices,),
        kwargs={"minlength": g.counts_len},
        rounds=10,
        warmup_rounds=1,
    )
    per_value(benchmark, batch.shape[0], note="indices precomputed, not timed")
    np.testing.assert_array_equal(counts, batch_hist.counts)


@pytest.mark.benchmark(group="record-batch")
def test_record_batch_numpy_histogram(
    benchmark, batch: npt.NDArray[np.int64], batch_hist: HdrHistogram, per_value
) -> None:
    """``np.histogram`` with as many (equal-width) bins as the HDR counts array."""
    bins = batch_hist.geometry.counts_len
    np.histogram(batch[:1000], bins=bins)  # warm-up
    counts, edges = benchmark.pedantic(
        np.histogram, args=(batch,), kwargs={"bins": bins}, rounds=5, warmup_rounds=1
    )
    per_value(benchmark, batch.shape[0], bins=bins)
    assert int(counts.sum()) == batch.shape[0]
    assert edges[0] == batch.min()
    assert edges[-1] == batch.max()


@pytest.mark.benchmark(group="record-batch")
def test_record_batch_hdrhistogram_record_value_loop(
    benchmark, batch: npt.NDArray[np.int64], sized: Callable[[int], int], per_value
) -> None:
    """``hdrhistogram``'s ``record_value`` in a loop, on a subset: compare per value."""
    subset = [int(v) for v in batch[: sized(N_PEER_LOOP)]]
    peer = PyHdrHistogram(*GEOMETRY)

    def record_all() -> None:
        record = peer.record_value
        for v in subset:
            record(v)

    peer.record_value(subset[0])  # warm-up
    benchmark.pedantic(record_all, setup=peer.reset, rounds=5, warmup_rounds=1)
    per_value(benchmark, len(subset), note="subset of the batch; compare ns/value")
    assert peer.get_total_count() == len(subset)
    assert HdrHistogram.decode(peer.encode()) == _hist(np.array(subset, dtype=np.int64))


# ------------------------------------------------------------------------------ record-one


@pytest.fixture(scope="module")
def one_values(batch: npt.NDArray[np.int64]) -> list[int]:
    return [int(v) for v in batch[:N_ONE]]


def _loop(record: Callable[[int], object], values: list[int]) -> Callable[[], None]:
    def run() -> None:
        for v in values:
            record(v)

    return run


@pytest.mark.benchmark(group="record-one")
def test_record_one_jobmetrics(benchmark, one_values: list[int], per_value) -> None:
    h = HdrHistogram(*GEOMETRY)
    h.record(one_values[0])  # warm-up
    h.reset()
    benchmark(_loop(h.record, one_values))
    per_value(benchmark, len(one_values), note="Python loop of record(int)")
    assert h.total_count % len(one_values) == 0
    fresh = HdrHistogram(*GEOMETRY)
    _loop(fresh.record, one_values)()
    assert fresh == _hist(np.array(one_values, dtype=np.int64))


@pytest.mark.benchmark(group="record-one")
def test_record_one_hdrhistogram(benchmark, one_values: list[int], per_value) -> None:
    peer = PyHdrHistogram(*GEOMETRY)
    peer.record_value(one_values[0])  # warm-up
    peer.reset()
    benchmark(_loop(peer.record_value, one_values))
    per_value(benchmark, len(one_values), note="Python loop of record_value(int)")
    assert peer.get_total_count() % len(one_values) == 0
    fresh = PyHdrHistogram(*GEOMETRY)
    _loop(fresh.record_value, one_values)()
    assert HdrHistogram.decode(fresh.encode()) == _hist(np.array(one_values, dtype=np.int64))


@pytest.mark.benchmark(group="record-one")
def test_record_one_ddsketch(benchmark, one_values: list[int], per_value) -> None:
    sketch = ddsketch.DDSketch()
    sketch.add(one_values[0])  # warm-up
    benchmark(_loop(sketch.add, one_values))
    per_value(benchmark, len(one_values), note="Python loop of DDSketch.add (1 % accuracy)")
    fresh = ddsketch.DDSketch()
    _loop(fresh.add, one_values)()
    assert fresh.count == len(one_values)
    exact = float(np.sort(one_values)[len(one_values) // 2 - 1])
    assert fresh.get_quantile_value(0.5) == pytest.approx(exact, rel=0.02)


# ------------------------------------------------------------------------------ quantiles


def _expected_quantiles(h: HdrHistogram, peer: object) -> list[int]:
    expected = peer.get_percentile_to_value_dict(list(PERCENTILES))  # type: ignore[attr-defined]
    values = [int(expected[p]) for p in PERCENTILES]
    # q * n is an integer here, so Java's ceil rank and C's round rank pick the same count
    assert all(round(q * h.total_count, 9).is_integer() for q in QUANTILES)
    assert list(h.values_at_quantiles(QUANTILES, rank="round")) == values
    return values


@pytest.mark.benchmark(group="quantiles")
def test_quantiles_jobmetrics(benchmark, query_hist: HdrHistogram, query_peer: object) -> None:
    qs = np.array(QUANTILES)
    query_hist.values_at_quantiles(qs)  # warm-up
    got = benchmark(query_hist.values_at_quantiles, qs)
    assert list(got) == _expected_quantiles(query_hist, query_peer)


@pytest.mark.benchmark(group="quantiles")
def test_quantiles_hdrhistogram_dict(benchmark, query_hist: HdrHistogram, query_peer: object) -> None:
    get = query_peer.get_percentile_to_value_dict  # type: ignore[attr-defined]
    get(list(PERCENTILES))  # warm-up
    got = benchmark(get, list(PERCENTILES))
    assert [got[p] for p in PERCENTILES] == _expected_quantiles(query_hist, query_peer)


@pytest.mark.benchmark(group="quantiles")
def test_quantiles_hdrhistogram_three_calls(benchmark, query_hist: HdrHistogram, query_peer: object) -> None:
    get = query_peer.get_value_at_percentile  # type: ignore[attr-defined]

    def three() -> list[int]:
        return [get(p) for p in PERCENTILES]

    three()  # warm-up
    got = benchmark(three)
    assert got == _expected_quantiles(query_hist, query_peer)


# ------------------------------------------------------------------------------ encode / decode
#
# Both libraries write zlib-compressed, base64-wrapped bytes at zlib's default level (6); the
# "floor" rows time that shared work alone on jobmetrics' own bytes, so the rest of each row is
# the library's own cost.

COMPRESSED_COOKIE = 0x1C849314  # V2 compressed encoding: cookie, int32 length, zlib stream
COMPRESSED_HEADER = struct.Struct(">ii")


@pytest.fixture(scope="module")
def inflated_bytes(query_hist: HdrHistogram) -> bytes:
    """The uncompressed V2 encoding (header and payload) inside ``query_hist.to_bytes()``."""
    return zlib.decompress(query_hist.to_bytes()[8:])


@pytest.mark.benchmark(group="encode")
def test_encode_jobmetrics(benchmark, query_hist: HdrHistogram) -> None:
    query_hist.encode()  # warm-up
    text = benchmark(query_hist.encode)
    assert HdrHistogram.decode(text) == query_hist
    assert PyHdrHistogram.decode(text).get_total_count() == query_hist.total_count


@pytest.mark.benchmark(group="encode")
def test_encode_hdrhistogram(benchmark, query_hist: HdrHistogram, query_peer: object) -> None:
    encode = query_peer.encode  # type: ignore[attr-defined]
    encode()  # warm-up
    text = benchmark(encode)
    assert HdrHistogram.decode(text) == query_hist


@pytest.mark.benchmark(group="encode")
def test_encode_floor_zlib_base64(benchmark, query_hist: HdrHistogram, inflated_bytes: bytes) -> None:
    """Extra row, no library: ``zlib.compress`` (level 6) and base64 of the same inflated bytes."""

    def compress_and_wrap() -> str:
        compressed = zlib.compress(inflated_bytes, 6)
        raw = COMPRESSED_HEADER.pack(COMPRESSED_COOKIE, len(compressed)) + compressed
        return binascii.b2a_base64(raw, newline=False).decode("ascii")

    compress_and_wrap()  # warm-up
    text = benchmark(compress_and_wrap)
    assert text == query_hist.encode()


@pytest.mark.benchmark(group="decode")
def test_decode_jobmetrics(benchmark, query_hist: HdrHistogram) -> None:
    text = query_hist.encode()
    HdrHistogram.decode(text)  # warm-up
    back = benchmark(HdrHistogram.decode, text)
    assert back == query_hist
    assert back.total_count == query_hist.total_count


@pytest.mark.benchmark(group="decode")
def test_decode_hdrhistogram(benchmark, query_hist: HdrHistogram) -> None:
    text = query_hist.encode()
    PyHdrHistogram.decode(text)  # warm-up
    back = benchmark(PyHdrHistogram.decode, text)
    assert back.get_total_count() == query_hist.total_count
    np.testing.assert_array_equal(np.asarray(back.counts[: back.counts_len]), query_hist.counts)


@pytest.mark.benchmark(group="decode")
def test_decode_floor_base64_inflate(benchmark, query_hist: HdrHistogram, inflated_bytes: bytes) -> None:
    """Extra row, no library: base64 and ``zlib.decompress`` of the same text, nothing parsed."""
    text = query_hist.encode()

    def unwrap_and_inflate() -> bytes:
        return zlib.decompress(binascii.a2b_base64(text)[8:])

    unwrap_and_inflate()  # warm-up
    assert benchmark(unwrap_and_inflate) == inflated_bytes


# ------------------------------------------------------------------------------ merge


@pytest.fixture(scope="module")
def merge_pair(sized: Callable[[int], int]) -> tuple[HdrHistogram, HdrHistogram, HdrHistogram]:
    n = sized(N_QUERY)
    a, b = _lognormal(n, seed=11), _lognormal(n, seed=12)
    return _hist(a), _hist(b), _hist(np.concatenate([a, b]))


@pytest.mark.benchmark(group="merge")
def test_merge_jobmetrics_add_in_place(benchmark, merge_pair) -> None:
    a, b, both = merge_pair
    a.copy().add(b)  # warm-up

    def fresh() -> tuple[tuple[HdrHistogram, HdrHistogram], dict[str, object]]:
        return (a.copy(), b), {}

    out = benchmark.pedantic(HdrHistogram.add, setup=fresh, rounds=20, warmup_rounds=1)
    assert out == both
    assert out.total_count == both.total_count


@pytest.mark.benchmark(group="merge")
def test_merge_jobmetrics_plus(benchmark, merge_pair) -> None:
    a, b, both = merge_pair
    _ = a + b  # warm-up
    out = benchmark(lambda: a + b)
    assert out == both
    assert out.total_count == both.total_count


@pytest.mark.benchmark(group="merge")
def test_merge_hdrhistogram_add(benchmark, merge_pair) -> None:
    a, b, both = merge_pair
    text_a = a.encode()
    peer_b = PyHdrHistogram.decode(b.encode())
    PyHdrHistogram.decode(text_a).add(peer_b)  # warm-up

    def fresh() -> tuple[tuple[object, object], dict[str, object]]:
        return (PyHdrHistogram.decode(text_a), peer_b), {}

    holder: list[object] = []

    def add(x: object, y: object) -> None:
        x.add(y)  # type: ignore[attr-defined]
        holder.append(x)

    benchmark.pedantic(add, setup=fresh, rounds=20, warmup_rounds=1)
    out = holder[-1]
    assert out.get_total_count() == both.total_count  # type: ignore[attr-defined]
    assert HdrHistogram.decode(out.encode()) == both  # type: ignore[attr-defined]
