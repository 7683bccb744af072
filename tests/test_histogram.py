"""Properties of the public :class:`jobmetrics.HdrHistogram`.

The guarantees are tested as stated, over many value distributions and bucket geometries:

* precision: a quantile is the highest equivalent value of the exact order statistic's bucket, so
  ``0 <= estimate - exact < bucket width`` and the width is at most ``max(2**unit_magnitude,
  exact * max_relative_error)``;
* rank rules: ``rank="ceil"`` is Java's, ``rank="round"`` is C's (and the Python library's, up to
  its floating-point order of operations);
* merging in any grouping equals recording everything in one histogram;
* encoding round trips and reads/writes the ``hdrhistogram`` package's bytes;
* the numba kernels agree with the plain-Python reference in ``tests/naive_hdr.py``.
"""

from __future__ import annotations

import functools
import math
import operator
import pickle
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive_hdr as naive
from jobmetrics import HdrHistogram
from jobmetrics.geometry import Geometry

try:
    from hdrh.histogram import HdrHistogram as PyHdrHistogram
except ImportError:  # pragma: no cover - a test dependency
    PyHdrHistogram = None

requires_hdrh = pytest.mark.skipif(PyHdrHistogram is None, reason="hdrhistogram not installed")

QUANTILES = (0.0, 0.001, 0.1, 0.5, 0.7, 0.9, 0.98, 0.99, 0.999, 1.0)
PERCENTILES = tuple(100 * Fraction(str(q)) for q in QUANTILES)
INT64_MAX = 2**63 - 1

# ------------------------------------------------------------------------------ strategies


@st.composite
def geometries(
    draw: st.DrawFn, *, min_sig: int = 0, max_sig: int = 5, max_counts: int | None = None
) -> Geometry:
    """Geometries with lowest 1, 1000 or 2**k, highest up to 2**62, 0 to 5 figures."""
    lowest = draw(st.one_of(st.just(1), st.just(1000), st.integers(0, 30).map(lambda k: 2**k)))
    sig = draw(st.integers(min_sig, max_sig))
    top = draw(st.integers(lowest.bit_length() + 1, 62))
    highest = max(2 * lowest, draw(st.integers(2 ** (top - 1), 2**top)))
    g = Geometry(lowest, highest, sig)
    if max_counts is not None and g.counts_len > max_counts:
        # shrink highest until the counts array is small enough (keeps lowest and figures)
        while g.counts_len > max_counts and g.highest > 2 * g.lowest:
            g = Geometry(g.lowest, max(2 * g.lowest, g.highest // 16), g.significant_figures)
    return g


def _mags(g: Geometry) -> tuple[int, int]:
    return g.unit_magnitude, g.half_magnitude


def _scale(rng: np.random.Generator, g: Geometry) -> float:
    """A log-uniform centre between lowest and highest."""
    return float(np.exp(rng.uniform(math.log(g.lowest), math.log(g.highest))))


def _to_values(x: npt.NDArray[np.float64], g: Geometry) -> npt.NDArray[np.int64]:
    clipped = np.clip(x, 0.0, float(g.highest))
    return np.minimum(clipped.astype(np.int64), g.highest)


def _uniform(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    return rng.integers(0, g.highest, size=n, endpoint=True, dtype=np.int64)


def _lognormal(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    return _to_values(rng.lognormal(math.log(_scale(rng, g)), rng.uniform(0.2, 2.0), n), g)


def _pareto(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    # shape 1: infinite mean, the heaviest tail in common use
    return _to_values(g.lowest * (1.0 + rng.pareto(1.0, n)), g)


def _exponential(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    return _to_values(rng.exponential(_scale(rng, g), n), g)


def _bimodal(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    centre = _scale(rng, g)
    fast = rng.normal(centre, centre / 10, n)
    slow = rng.normal(centre * 100, centre * 5, n)
    return _to_values(np.where(rng.random(n) < 0.9, fast, slow), g)


def _constant(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    return np.full(n, rng.integers(0, g.highest, endpoint=True), dtype=np.int64)


def _edges(rng: np.random.Generator, n: int, g: Geometry) -> npt.NDArray[np.int64]:
    """Values exactly on bucket edges: both ends of sub-buckets, powers of two, the range ends."""
    um, hm = _mags(g)
    top_index = naive.counts_index(g.highest, um, hm)
    pool = {0, 1, g.lowest, g.lowest - 1, g.lowest + 1, g.highest, g.highest - 1}
    pool.update(2**k for k in range(g.highest.bit_length()) if 2**k <= g.highest)
    pool.update((g.sub_bucket_count << k) - d for k in range(um, 62) for d in (0, 1))
    pool.update((g.sub_bucket_count // 2 << k) - d for k in range(um, 62) for d in (0, 1))
    for index in rng.integers(0, top_index, size=64, endpoint=True):
        pool.add(naive.lowest_equivalent(int(index), um, hm))
        pool.add(naive.highest_equivalent(int(index), um, hm))
    values = np.array(sorted(v for v in pool if 0 <= v <= g.highest), dtype=np.int64)
    return rng.choice(values, size=n)


DISTRIBUTIONS: dict[str, Callable[[np.random.Generator, int, Geometry], npt.NDArray[np.int64]]] = {
    "uniform": _uniform,
    "lognormal": _lognormal,
    "pareto-1": _pareto,
    "exponential": _exponential,
    "bimodal": _bimodal,
    "constant": _constant,
    "edges": _edges,
}

seeds = st.integers(0, 2**32 - 1)
# Subnormal percentiles are left out: p / 100 underflows to 0.0 below about 2.5e-322, so
# value_at_percentile(5e-324) answers as for 0 (lowest equivalent) where Java answers with the
# highest equivalent value; value_at_quantile takes the quantile itself and has no such gap.
percentile_floats = st.floats(0.0, 100.0, allow_subnormal=False)


@st.composite
def datasets(
    draw: st.DrawFn, *, max_n: int = 2000, max_counts: int | None = None, min_sig: int = 0
) -> tuple[Geometry, npt.NDArray[np.int64]]:
    g = draw(geometries(max_counts=max_counts, min_sig=min_sig))
    name = draw(st.sampled_from(sorted(DISTRIBUTIONS)))
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(seeds))
    return g, DISTRIBUTIONS[name](rng, n, g)


def _hist(g: Geometry, values: npt.ArrayLike = (), **kwargs: object) -> HdrHistogram:
    h = HdrHistogram(g.lowest, g.highest, g.significant_figures, **kwargs)  # type: ignore[arg-type]
    if np.size(values):
        h.record(np.asarray(values))
    return h


def _naive_counts(g: Geometry, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    um, hm = _mags(g)
    indices = [naive.counts_index(int(v), um, hm) for v in np.asarray(values).ravel()]
    return np.bincount(np.array(indices, dtype=np.int64), minlength=g.counts_len).astype(np.int64)


def _trimmed(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``counts`` up to its last non-zero count: same naive answers, much less Python looping."""
    nonzero = np.flatnonzero(counts)
    return counts[: int(nonzero[-1]) + 1 if nonzero.size else 0]


def _exact_rank(q: float, n: int) -> int:
    """The mathematical ceil rank of the decimal quantile ``q`` (no floating point)."""
    return max(1, math.ceil(Fraction(str(q)) * n))


# ------------------------------------------------------------------------------ precision


def _check_quantiles(h: HdrHistogram, values: npt.NDArray[np.int64]) -> None:
    g = h.geometry
    um, hm = _mags(g)
    ordered = np.sort(values)
    n = ordered.shape[0]
    estimates = h.values_at_quantiles(QUANTILES)
    for q, est in zip(QUANTILES, estimates, strict=True):
        exact = int(ordered[_exact_rank(q, n) - 1])
        low = naive.lowest_equivalent_value(exact, um, hm)
        high = naive.highest_equivalent_value(exact, um, hm)
        width = high - low + 1
        assert h.value_at_quantile(q) == est
        if q == 0.0:
            # q = 0 reports the bottom of the minimum's bucket
            assert est == low, (q, exact)
            assert 0 <= exact - est < width
        else:
            # the top of the exact order statistic's bucket
            assert est == high, (q, exact)
            assert 0 <= est - exact < width
        # the width of that bucket is the precision guarantee
        assert width <= max(2**um, exact * g.max_relative_error)
        if exact >= (g.sub_bucket_count // 2) << um:
            assert abs(int(est) - exact) < exact * g.max_relative_error


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
@settings(max_examples=25)
@given(g=geometries(), n=st.integers(1, 2000), seed=seeds)
def test_quantiles_are_the_top_of_the_exact_order_statistics_bucket(
    distribution: str, g: Geometry, n: int, seed: int
) -> None:
    values = DISTRIBUTIONS[distribution](np.random.default_rng(seed), n, g)
    _check_quantiles(_hist(g, values), values)


@given(g=geometries(), data=st.data())
def test_bucket_width_is_the_precision_guarantee(g: Geometry, data: st.DataObject) -> None:
    um, hm = _mags(g)
    threshold = (g.sub_bucket_count // 2) << um
    value = data.draw(
        st.one_of(
            st.integers(0, g.highest),
            st.integers(max(0, threshold - 3), threshold + 3),
            st.integers(0, min(g.highest, 4 * g.lowest)),
        )
    )
    h = _hist(g)
    low, high = h.bucket_range(naive.counts_index(value, um, hm))
    assert low <= value <= high
    assert (low, high) == (
        naive.lowest_equivalent_value(value, um, hm),
        naive.highest_equivalent_value(value, um, hm),
    )
    width = high - low + 1
    if value >= threshold:
        assert width << hm <= value  # width / value <= 2**-hm == max_relative_error
    else:
        assert width == 2**um  # absolute resolution of 2**unit_magnitude <= lowest
    assert width <= max(2**um, value * g.max_relative_error)


@pytest.mark.parametrize(("sig", "half_magnitude"), [(0, 0), (1, 4), (2, 7), (3, 10), (4, 14), (5, 17)])
def test_max_relative_error_by_significant_figures(sig: int, half_magnitude: int) -> None:
    g = Geometry(1, 2**40, sig)
    assert g.half_magnitude == half_magnitude
    assert g.max_relative_error == 2.0**-half_magnitude
    assert g.max_relative_error <= 10.0**-sig or sig == 0


def test_two_figures_is_below_one_in_128() -> None:
    # the worst case: the first sub-bucket of the upper half, where width / value is largest
    h = HdrHistogram(1, 2**40, 2)
    value = 128 << 20
    h.record(value)
    top = h.value_at_quantile(1.0)
    assert top == (129 << 20) - 1
    error = (top - value) / value
    assert 0.0078 < error < 1 / 128  # "0.78 %": strictly below 0.78125 %
    assert h.geometry.max_relative_error == 1 / 128


def test_relative_bound_starts_at_half_the_sub_buckets_not_at_lowest() -> None:
    # lowest=1000: unit 512, 256 sub-buckets; values below 128 * 512 are kept to +-512 only.
    h = HdrHistogram(1000, 3_600_000_000, 2)
    h.record(1000)
    assert h.value_at_quantile(0.5) == 1023  # 2.3 % above: an absolute error below 2**9
    assert h.geometry.max_relative_error == 1 / 128
    h.reset()
    h.record(128 * 512)
    assert (h.value_at_quantile(0.5) - 128 * 512) / (128 * 512) < 1 / 128
    # lowest=1 keeps every value below the sub-bucket count exactly
    exact = HdrHistogram(1, 1000, 2)
    exact.record(np.arange(256))
    assert [exact.value_at_quantile((v + 1) / 256) for v in range(256)] == list(range(256))


# ------------------------------------------------------------------------------ rank rules


@given(
    case=datasets(max_n=300),
    percentiles=st.lists(percentile_floats, min_size=1, max_size=8),
)
def test_ceil_rank_is_javas(case: tuple[Geometry, npt.NDArray[np.int64]], percentiles: list[float]) -> None:
    g, values = case
    h = _hist(g, values)
    counts = _trimmed(_naive_counts(g, values))
    for p in [*percentiles, *map(float, PERCENTILES)]:
        expected = naive.value_at_percentile(counts, p, *_mags(g), rank="ceil")
        assert h.value_at_percentile(p) == expected, p
        assert h.value_at_percentile(p, rank="ceil") == expected, p


def _python_round_rank(percentile: float, total: int) -> int:
    """``hdrhistogram``'s target count: ``p * total / 100`` where C computes ``p / 100 * total``."""
    return max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)


@requires_hdrh
@given(
    case=datasets(max_n=200, max_counts=20_000, min_sig=1),
    percentiles=st.lists(percentile_floats, min_size=1, max_size=6),
)
def test_round_rank_is_cs_and_the_python_librarys(
    case: tuple[Geometry, npt.NDArray[np.int64]], percentiles: list[float]
) -> None:
    g, values = case
    h = _hist(g, values)
    counts = _trimmed(_naive_counts(g, values))
    theirs = PyHdrHistogram(g.lowest, g.highest, g.significant_figures)
    for v in values:
        assert theirs.record_value(int(v))
    for p in [*percentiles, *map(float, PERCENTILES)]:
        ours = h.value_at_percentile(p, rank="round")
        assert ours == naive.value_at_percentile(counts, p, *_mags(g), rank="round"), p
        if _python_round_rank(p, len(values)) == naive.rank_round(p, len(values)):
            assert ours == theirs.get_value_at_percentile(p), p


@requires_hdrh
def test_round_rank_differs_from_the_python_library_on_float_ties() -> None:
    # 70 / 100 * 45 = 31.499999999999996 (C, Go, jobmetrics) but 70 * 45 / 100 = 31.5 (Python)
    values = np.arange(1, 46)
    h = HdrHistogram(1, 1000, 2)
    h.record(values)
    theirs = PyHdrHistogram(1, 1000, 2)
    for v in values:
        theirs.record_value(int(v))
    assert naive.rank_round(70.0, 45) == 31
    assert _python_round_rank(70.0, 45) == 32
    assert h.value_at_percentile(70, rank="round") == 31
    assert theirs.get_value_at_percentile(70) == 32
    assert h.value_at_percentile(70) == 32  # the ceil rank: ceil(31.5)


def test_rank_rules_on_a_small_example() -> None:
    h = HdrHistogram(1, 1000, 2)
    h.record(np.array([1, 2, 3, 4]))
    assert h.value_at_quantile(0.5) == 2  # rank ceil(2.0) = 2
    assert h.value_at_quantile(0.5, rank="round") == 2  # rank floor(2.0 + 0.5) = 2
    assert h.value_at_quantile(0.3) == 2  # rank ceil(1.2) = 2
    assert h.value_at_quantile(0.3, rank="round") == 1  # rank floor(1.2 + 0.5) = 1
    assert h.value_at_quantile(0.625) == 3  # rank ceil(2.5) = 3
    assert h.value_at_quantile(0.625, rank="round") == 3  # rank floor(3.0) = 3
    assert h.value_at_quantile(0.0) == 1
    assert h.value_at_quantile(1.0) == 4


def test_values_at_quantiles_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    h = HdrHistogram(1, 10**9, 3)
    h.record(rng.integers(0, 10**9, 5000))
    qs = [0.9, 0.1, 0.5, 0.5, 1.0, 0.0, 0.999]
    for rank in ("ceil", "round"):
        got = h.values_at_quantiles(qs, rank=rank)
        assert got.dtype == np.int64
        assert list(got) == [h.value_at_quantile(q, rank=rank) for q in qs]


@pytest.mark.parametrize("q", [-0.1, 1.0000001, math.nan, math.inf])
def test_bad_quantiles_raise(q: float) -> None:
    with pytest.raises(ValueError, match="quantile must be within"):
        HdrHistogram().value_at_quantile(q)


def test_bad_rank_raises() -> None:
    with pytest.raises(ValueError, match="rank must be 'ceil'"):
        HdrHistogram().value_at_quantile(0.5, rank="nearest")  # type: ignore[arg-type]


def test_empty_histogram() -> None:
    h = HdrHistogram()
    assert (h.total_count, len(h), h.min, h.max, h.mean, h.stddev) == (0, 0, 0, 0, 0.0, 0.0)
    assert h.value_at_quantile(0.5) == 0
    assert list(h.values_at_quantiles([0.0, 1.0])) == [0, 0]
    assert h.quantile_at_value(10) == 0.0
    assert h.count_between(0, 10**9) == 0
    values, counts = h.recorded()
    assert values.size == counts.size == 0
    assert HdrHistogram.decode(h.encode()) == h
    assert repr(h) == (f"HdrHistogram(lowest=1, highest={h.highest}, significant_figures=2) <total_count=0>")


# ------------------------------------------------------------------------------ merging


@settings(max_examples=40)
@given(case=datasets(max_n=1500), k=st.integers(1, 6), seed=seeds)
def test_merging_in_any_grouping_equals_recording_in_one(
    case: tuple[Geometry, npt.NDArray[np.int64]], k: int, seed: int
) -> None:
    g, values = case
    whole = _hist(g, values)
    rng = np.random.default_rng(seed)
    group = rng.integers(0, k, size=values.shape[0])
    parts = [_hist(g, values[group == i]) for i in range(k)]

    assert sum(parts) == whole
    assert HdrHistogram.merged(parts) == whole
    assert functools.reduce(operator.add, parts) == whole
    in_place = _hist(g)
    for part in parts:
        assert in_place.add(part) is in_place
    assert in_place == whole
    # any tree of merges, in any order
    pending = [parts[i] for i in rng.permutation(k)]
    while len(pending) > 1:
        i = int(rng.integers(0, len(pending) - 1))
        a, b = pending[i], pending[i + 1]
        pending[i : i + 2] = [a + b if rng.random() < 0.5 else b + a]
    merged = pending[0]
    assert merged == whole
    for m in (merged, in_place, sum(parts)):
        assert m.total_count == whole.total_count == values.shape[0]
        np.testing.assert_array_equal(m.counts, whole.counts)
        assert list(m.values_at_quantiles(QUANTILES)) == list(whole.values_at_quantiles(QUANTILES))
    # merging never changes the inputs
    assert sum(p.total_count for p in parts) == values.shape[0]


@given(case=datasets(max_n=800), seed=seeds)
def test_subtract_undoes_add(case: tuple[Geometry, npt.NDArray[np.int64]], seed: int) -> None:
    g, values = case
    cut = int(np.random.default_rng(seed).integers(0, values.shape[0] + 1))
    a, b = _hist(g, values[:cut]), _hist(g, values[cut:])
    both = a + b
    assert both - b == a
    assert (both - b).total_count == a.total_count
    both -= a
    assert both == b
    assert both.total_count == b.total_count
    c = a.copy()
    c += b
    c -= b
    assert c == a


def test_subtract_more_than_recorded_raises_and_changes_nothing() -> None:
    a = HdrHistogram(1, 1000, 2)
    a.record(np.array([1, 2, 3]))
    b = HdrHistogram(1, 1000, 2)
    b.record(np.array([3, 3]))
    before = a.copy()
    with pytest.raises(ValueError, match="cannot subtract"):
        a.subtract(b)
    assert a == before
    assert a.total_count == 3


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((1, 10**6, 2), (1, 10**6, 3)),
        ((1, 10**6, 2), (1000, 10**6, 2)),
        ((1, 10**6, 0), (2, 10**6, 0)),
    ],
)
def test_incompatible_geometries_raise(first: tuple[int, ...], second: tuple[int, ...]) -> None:
    a, b = HdrHistogram(*first), HdrHistogram(*second)
    a.record(5)
    b.record(5)
    for merge in (operator.add, operator.sub, lambda x, y: x.add(y), lambda x, y: x.subtract(y)):
        with pytest.raises(ValueError, match=r"incompatible histograms: lowest=\d+/significant"):
            merge(a, b)
    with pytest.raises(ValueError, match="incompatible"):
        HdrHistogram.merged([a, b])
    assert a.total_count == 1
    assert a != b


def test_lowests_with_the_same_power_of_two_are_compatible() -> None:
    # 512 and 1000 have the same unit magnitude, so every value lands in the same bucket
    a, b = HdrHistogram(512, 10**6, 2), HdrHistogram(1000, 10**6, 2)
    a.record(np.array([700, 5000]))
    b.record(np.array([700, 5000]))
    assert a == b
    assert (a + b).total_count == 4


def test_merge_with_other_types_raises() -> None:
    h = HdrHistogram()
    with pytest.raises(TypeError, match="can only merge an HdrHistogram"):
        h.add([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        h + 1  # type: ignore[operator]
    with pytest.raises(ValueError, match="at least one"):
        HdrHistogram.merged([])


@given(
    sig=st.integers(0, 5),
    lowest=st.sampled_from([1, 1000, 2**10]),
    seed=seeds,
    n=st.integers(1, 500),
)
def test_different_highest_merges_when_values_fit(sig: int, lowest: int, seed: int, n: int) -> None:
    small = HdrHistogram(lowest, 100 * lowest, sig)
    big = HdrHistogram(lowest, 2**40, sig)
    rng = np.random.default_rng(seed)
    values = rng.integers(0, small.highest, size=n, endpoint=True)
    small.record(values)
    big.record(values[::-1])
    assert small == big
    assert (big + small).total_count == (small + big).total_count == 2 * n
    assert big + small == small + big
    assert HdrHistogram.merged([small, big]) == HdrHistogram.merged([big, small])
    # a value the small one cannot hold: the merge raises and leaves it unchanged
    big.record(2**39)
    before = small.copy()
    with pytest.raises(ValueError, match="outside the trackable range"):
        small.add(big)
    assert small == before
    assert small.total_count == n
    assert (big + small).total_count == 2 * n + 1


# ------------------------------------------------------------------------------ encoding


@given(case=datasets(max_n=500), clamp=st.booleans())
def test_encode_decode_is_the_identity(case: tuple[Geometry, npt.NDArray[np.int64]], clamp: bool) -> None:
    g, values = case
    h = _hist(g, values, out_of_range="clamp" if clamp else "raise")
    text = h.encode()
    assert text.startswith("HISTFAAA")
    raw = h.to_bytes()
    for data in (text, text.encode("ascii"), raw, bytearray(raw), memoryview(raw)):
        back = HdrHistogram.decode(data)
        assert back == h
        assert back.total_count == h.total_count
        assert (back.lowest, back.highest, back.significant_figures) == (
            g.lowest,
            g.highest,
            g.significant_figures,
        )
        np.testing.assert_array_equal(back.counts, h.counts)
        assert (back.min, back.max) == (h.min, h.max)
    assert HdrHistogram.decode(h.to_bytes(level=9)) == h
    assert HdrHistogram.decode(h.encode(level=1)) == h


def test_decode_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        HdrHistogram.decode("HISTFAAAnot base64!")
    with pytest.raises(ValueError):
        HdrHistogram.decode(b"\x00\x01\x02\x03")


@requires_hdrh
@given(case=datasets(max_n=300, max_counts=20_000, min_sig=1))
def test_interop_with_the_python_library_both_ways(
    case: tuple[Geometry, npt.NDArray[np.int64]],
) -> None:
    g, values = case
    ours = _hist(g, values)
    theirs = PyHdrHistogram(g.lowest, g.highest, g.significant_figures)
    for v in values:
        assert theirs.record_value(int(v))

    # they read ours
    read = PyHdrHistogram.decode(ours.encode())
    assert read.get_total_count() == ours.total_count
    np.testing.assert_array_equal(np.asarray(read.counts[: read.counts_len]), ours.counts)
    # we read theirs
    back = HdrHistogram.decode(theirs.encode())
    assert back == ours
    assert back.total_count == theirs.get_total_count()
    np.testing.assert_array_equal(back.counts, np.asarray(theirs.counts[: theirs.counts_len]))

    n = values.shape[0]
    for p in map(float, PERCENTILES):
        if _python_round_rank(p, n) == naive.rank_round(p, n):
            expected = theirs.get_value_at_percentile(p)
            assert ours.value_at_percentile(p, rank="round") == expected, p
            assert back.value_at_percentile(p, rank="round") == expected, p
            assert read.get_value_at_percentile(p) == expected, p
    if values.max() > 0:  # the Python library reports 0 when only 0 was recorded (Java does not)
        assert ours.max == theirs.get_max_value()
    assert ours.mean == pytest.approx(theirs.get_mean_value(), rel=1e-12)
    if theirs.get_count_at_index(0) == 0:
        assert ours.min == theirs.get_min_value()


# ------------------------------------------------------------------------------ kernels vs naive


@given(case=datasets(max_n=1000, max_counts=300_000), probes=st.lists(st.integers(-5, 2**63 - 1), max_size=6))
def test_kernels_agree_with_the_naive_reference(
    case: tuple[Geometry, npt.NDArray[np.int64]], probes: list[int]
) -> None:
    g, values = case
    um, hm = _mags(g)
    h = _hist(g, values)
    counts = _naive_counts(g, values)
    np.testing.assert_array_equal(h.counts, counts)
    assert h.counts.shape == (g.counts_len,)
    assert h.total_count == values.shape[0] == naive.total_count(counts)

    stats = naive.stats(_trimmed(counts), um, hm)
    assert h.min == stats.min
    assert h.max == stats.max
    assert h.mean == pytest.approx(stats.mean, rel=1e-12)
    assert h.stddev == pytest.approx(stats.stddev, rel=1e-9, abs=1e-9 * stats.mean)

    total = int(counts.sum())
    probes = [*probes, *(int(v) for v in values[:4]), 0, g.lowest, g.highest, h.highest_trackable]
    for v in probes:
        index = naive.counts_index(v, um, hm) if v >= 0 else -1
        below = int(counts[: min(index, g.counts_len - 1) + 1].sum()) if index >= 0 else 0
        assert h.quantile_at_value(v) == below / total, v
        in_bucket = int(counts[index]) if 0 <= index < g.counts_len else 0
        assert h.count_at(v) == in_bucket, v
    for low, high in zip(probes, sorted(probes, reverse=True), strict=True):
        lo, hi = min(low, high), max(low, high)
        i = naive.counts_index(max(lo, 0), um, hm)
        j = min(naive.counts_index(max(hi, 0), um, hm), g.counts_len - 1)
        assert h.count_between(lo, hi) == int(counts[i : j + 1].sum()), (lo, hi)

    nonzero = np.flatnonzero(counts)
    rec_values, rec_counts = h.recorded()
    assert list(rec_values) == [naive.value_from_index(int(i), um, hm) for i in nonzero]
    np.testing.assert_array_equal(rec_counts, counts[nonzero])
    for i in nonzero[:8]:
        assert h.bucket_range(int(i)) == (
            naive.lowest_equivalent(int(i), um, hm),
            naive.highest_equivalent(int(i), um, hm),
        )


@given(case=datasets(max_n=500))
def test_sparse_form_round_trips(case: tuple[Geometry, npt.NDArray[np.int64]]) -> None:
    g, values = case
    h = _hist(g, values)
    indices, counts = h.to_sparse()
    assert indices.dtype == counts.dtype == np.int64
    assert np.all(np.diff(indices) > 0)
    assert np.all(counts > 0)
    back = HdrHistogram.from_sparse(indices, counts, g.lowest, g.highest, g.significant_figures)
    assert back == h
    assert back.total_count == h.total_count
    twice = h.copy()
    twice.add_sparse(indices, counts)
    assert twice == h + h
    assert HdrHistogram.from_counts(h.counts, g.lowest, g.highest, g.significant_figures) == h


def test_sparse_input_is_validated() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match="equal length"):
        h.add_sparse([1, 2], [1])
    with pytest.raises(ValueError, match="non-negative"):
        h.add_sparse([1], [-1])
    with pytest.raises(ValueError, match="beyond this histogram"):
        h.add_sparse([h.geometry.counts_len], [1])
    assert h.total_count == 0


@given(case=datasets(max_n=500), clamp=st.booleans())
def test_pickle_round_trip(case: tuple[Geometry, npt.NDArray[np.int64]], clamp: bool) -> None:
    g, values = case
    h = _hist(g, values, out_of_range="clamp" if clamp else "raise")
    if clamp:
        h.record(np.array([-1, -2, INT64_MAX]))
    back = pickle.loads(pickle.dumps(h))
    assert back == h
    assert back.total_count == h.total_count
    assert back.clamped_count == h.clamped_count == (3 if clamp else 0)
    assert back.geometry == h.geometry
    # the out-of-range policy survives too
    if clamp:
        back.record(-7)
        assert back.clamped_count == 4
    else:
        with pytest.raises(ValueError):
            back.record(-7)


# ------------------------------------------------------------------------------ recording


VALUES = [0, 1, 5, 100, 127]


@pytest.mark.parametrize(
    "dtype",
    [
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float32,
        np.float64,
        np.bool_,
    ],
)
def test_every_integer_dtype_and_integral_floats(dtype: type) -> None:
    values = np.array(VALUES if dtype is not np.bool_ else [0, 1, 1], dtype=dtype)
    h = HdrHistogram(1, 1000, 2)
    h.record(values)
    expected = HdrHistogram(1, 1000, 2)
    for v in values.astype(np.int64):
        expected.record(int(v))
    assert h == expected
    assert h.total_count == values.shape[0]
    # scalars of that dtype
    one = HdrHistogram(1, 1000, 2)
    one.record(values[-1])
    assert one.count_at(int(values[-1])) == 1


def test_sequences_scalars_and_nd_arrays() -> None:
    h = HdrHistogram(1, 1000, 2)
    h.record([1, 2, 3])
    h.record((4, 5))
    h.record(6)
    h.record(np.int32(7))
    h.record(8.0)
    h.record(np.float64(9.0))
    h.record(np.array([[10, 11], [12, 13]]))
    h.record(np.array(14))
    h.record(np.array([], dtype=np.int64))
    h.record([])
    assert h.total_count == 14
    assert [int(v) for v in h.recorded()[0]] == list(range(1, 15))


@given(case=datasets(max_n=300), data=st.data())
def test_count_scalar_and_array(case: tuple[Geometry, npt.NDArray[np.int64]], data: st.DataObject) -> None:
    g, values = case
    weights = np.array(
        data.draw(st.lists(st.integers(0, 1000), min_size=len(values), max_size=len(values))),
        dtype=np.int64,
    )
    weighted = _hist(g)
    weighted.record(values, count=weights)
    assert weighted == _hist(g, np.repeat(values, weights))
    assert weighted.total_count == int(weights.sum())

    k = data.draw(st.integers(0, 5))
    scalar = _hist(g)
    scalar.record(values, count=k)
    assert scalar == _hist(g, np.repeat(values, k))
    assert scalar.total_count == k * len(values)

    one = _hist(g)
    one.record(int(values[0]), count=3)
    assert one.count_at(int(values[0])) == 3
    assert one.total_count == 3


def test_count_shape_must_match() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match=r"count must be a scalar or match values' shape \(3,\)"):
        h.record([1, 2, 3], count=[1, 2])
    assert h.total_count == 0


def test_negative_counts_raise() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        h.record(5, count=-1)
    assert h.total_count == 0
    with pytest.raises(ValueError, match="count must be >= 0, got -2 at position 2"):
        h.record([1, 2, 3, 4], count=[1, 1, -2, 1])
    # the values before the bad count stay recorded, as with out-of-range values
    assert h.total_count == 2
    assert h.count_at(1) == h.count_at(2) == 1
    assert h.count_at(3) == h.count_at(4) == 0


def test_non_integral_counts_raise() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError):
        h.record(5, count=1.7)


@pytest.mark.parametrize("bad", [1.5, -0.5, math.nan, math.inf, -math.inf])
def test_non_integral_floats_raise(bad: float) -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match="values must be integers"):
        h.record(np.array([1.0, 2.0, bad]))
    with pytest.raises(ValueError, match="values must be integers"):
        h.record(bad)
    assert h.total_count == 0  # checked before anything is recorded


def test_non_numeric_values_raise_type_error() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(TypeError, match="values must be integers, got an array of dtype"):
        h.record(np.array(["1", "2"]))


def test_expected_interval_follows_java_and_c() -> None:
    h = HdrHistogram(1, 10**9, 3)
    h.record(25, expected_interval=10)
    assert h.total_count == 2  # 25 and 15; not 5 (the Python library also records 5)
    assert [int(v) for v in h.recorded()[0]] == [15, 25]

    # HdrHistogram_c test V5b: an exact multiple back-fills down to the interval itself
    c = HdrHistogram(1, 3_600_000_000, 3)
    c.record(100_000_000, expected_interval=10_000)
    assert c.total_count == 1 + 9_999
    assert c.count_between(10_000, 10_000) == 1
    assert c.count_between(0, 9_999) == 0

    small = HdrHistogram(1, 1000, 2)
    small.record(np.array([3, 10]), expected_interval=10)  # at or below the interval: no back-fill
    assert small.total_count == 2


@given(
    values=st.lists(st.integers(0, 100_000), min_size=1, max_size=20),
    interval=st.integers(1, 5_000),
)
def test_expected_interval_matches_the_naive_reference(values: list[int], interval: int) -> None:
    g = Geometry(1, 10**6, 2)
    h = _hist(g)
    h.record(np.array(values), expected_interval=interval)
    corrected = [c for v in values for c in naive.corrected_values(v, interval)]
    assert h == _hist(g, corrected)
    assert h.total_count == len(corrected)


def test_expected_interval_options_are_validated() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match="expected_interval must be > 0, got 0"):
        h.record(5, expected_interval=0)
    with pytest.raises(ValueError, match="cannot be combined"):
        h.record(5, count=2, expected_interval=1)
    assert h.total_count == 0


@pytest.mark.parametrize("bad", [-1, 1024, 2**62, INT64_MAX, 2**64])
def test_out_of_range_raises_naming_the_value_and_the_range(bad: int) -> None:
    h = HdrHistogram(1, 1000, 2)
    assert h.highest_trackable == 1023
    message = rf"value {bad} is outside the trackable range \[0, 1023\].*highest=1000"
    with pytest.raises(ValueError, match=message):
        h.record(bad)
    assert h.total_count == 0
    h.record(1023)  # the top of the last bucket is still trackable
    assert h.total_count == 1


@pytest.mark.parametrize("path", ["plain", "count", "interval"])
def test_out_of_range_keeps_the_values_before_the_bad_one(path: str) -> None:
    h = HdrHistogram(1, 1000, 2)
    values = np.array([1, 2, 5000, 3, -1])
    kwargs: dict[str, object] = {
        "plain": {},
        "count": {"count": np.array([2, 2, 2, 2, 2])},
        "interval": {"expected_interval": 100},
    }[path]
    with pytest.raises(ValueError, match="value 5000 is outside"):
        h.record(values, **kwargs)  # type: ignore[arg-type]
    per_value = 2 if path == "count" else 1
    assert h.total_count == 2 * per_value
    assert h.count_at(1) == h.count_at(2) == per_value
    assert h.count_at(3) == 0
    assert h.clamped_count == 0


@pytest.mark.parametrize("path", ["scalar", "plain", "count", "interval"])
def test_clamp_records_the_range_ends_and_counts(path: str) -> None:
    h = HdrHistogram(1, 1000, 2, out_of_range="clamp")
    values = [7, -5, 5000, 2**62]
    if path == "scalar":
        for v in values:
            h.record(v)
    elif path == "plain":
        h.record(np.array(values))
    elif path == "count":
        h.record(np.array(values), count=3)
    else:
        h.record(np.array(values), expected_interval=10_000)
    per_value = 3 if path == "count" else 1
    assert h.total_count == 4 * per_value
    assert h.clamped_count == 3  # clamped values, not their counts
    assert h.count_at(0) == per_value
    assert h.count_at(1000) == 2 * per_value  # both large values land in highest's bucket
    assert h.count_at(7) == per_value
    assert h.max == h.bucket_range(naive.counts_index(1000, *_mags(h.geometry)))[1]
    h.reset()
    assert (h.total_count, h.clamped_count) == (0, 0)


def test_out_of_range_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="out_of_range must be 'raise' or 'clamp'"):
        HdrHistogram(out_of_range="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values",
    [
        np.array([5, 2**64 - 1], dtype=np.uint64),
        np.array([5.0, 1e19]),
        np.array([5.0, -1e19]),
    ],
    ids=["uint64", "float", "negative-float"],
)
def test_clamp_also_clamps_values_beyond_int64(values: npt.NDArray[np.generic]) -> None:
    h = HdrHistogram(1, 1000, 2, out_of_range="clamp")
    h.record(values)
    assert h.total_count == 2
    assert h.clamped_count == 1


@pytest.mark.parametrize(
    "values",
    [np.array([5, 2**64 - 1], dtype=np.uint64), np.array([5.0, 1e19])],
    ids=["uint64", "float"],
)
def test_values_before_one_beyond_int64_stay_recorded(values: npt.NDArray[np.generic]) -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match="outside the trackable range"):
        h.record(values)
    assert h.total_count == 1


def test_error_names_a_huge_negative_float() -> None:
    h = HdrHistogram(1, 1000, 2)
    with pytest.raises(ValueError, match=r"value -1000000000000000000\d* is outside"):
        h.record(np.array([-1e19]))


def test_reset_and_copy_are_independent() -> None:
    h = HdrHistogram(1, 1000, 2)
    h.record(np.array([1, 2, 3]))
    c = h.copy()
    h.record(4)
    assert c.total_count == 3
    assert h.total_count == 4
    h.reset()
    assert h.total_count == 0
    assert not h.counts.any()
    assert c.count_at(3) == 1
    with pytest.raises(ValueError):
        c.counts[0] = 1  # the counts view is read-only


# -- single values are staged, then counted in batches -------------------------------------------


@given(
    values=st.lists(st.integers(0, 10**9), max_size=9000),
    cuts=st.lists(st.integers(0, 9000), max_size=4),
)
def test_values_recorded_one_at_a_time_equal_one_batch(values: list[int], cuts: list[int]) -> None:
    """Staged single values are counted exactly as one array, whatever queries run in between
    (every query, merge, copy and encoding sees the staged values)."""
    one_by_one = HdrHistogram(1, 10**9, 2)
    cut_at = set(cuts)
    for i, v in enumerate(values):
        if i in cut_at:  # a read in the middle drains what is staged so far
            assert one_by_one.total_count == i
        one_by_one.record(v)
    batch = HdrHistogram(1, 10**9, 2)
    batch.record(np.asarray(values, dtype=np.int64))
    assert one_by_one.total_count == len(values)
    assert np.array_equal(one_by_one.counts, batch.counts)
    assert one_by_one == batch


def test_staged_values_reach_pickles_merges_and_encodings() -> None:
    h = HdrHistogram(1, 10**6, 2)
    for v in (5, 70, 900, 900, 123_456):
        h.record(v)
    assert pickle.loads(pickle.dumps(h)).total_count == 5
    h2 = HdrHistogram(1, 10**6, 2)
    h2.record(7)
    assert (h2 + h).total_count == 6
    assert HdrHistogram.decode(h2.encode()).total_count == 1
    h2.record(8)
    h2.add(h)
    assert h2.total_count == 7 and h2.max >= 123_456
    with pytest.raises(ValueError, match="10000000"):
        h.record(10_000_000)  # far beyond highest: the checked path, not the stage
    assert h.total_count == 5
