"""The public :class:`HdrHistogram`: a log-linear histogram compatible with HdrHistogram V2.

A thin layer over the kernels in :mod:`jobmetrics._kernels.hdr`: it validates options once, owns the
dense ``int64`` counts array, and translates results into Python types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, SupportsIndex

import numpy as np
import numpy.typing as npt

from . import codec
from ._kernels import hdr as _hdr
from ._kernels import hdr_query as _q
from .geometry import Geometry, lowest_equivalent_values

__all__ = ["DEFAULT_HIGHEST", "HdrHistogram"]

_I64_MAX = np.iinfo(np.int64).max

#: Seven days in microseconds: the default range of jobmetrics' duration histograms.
DEFAULT_HIGHEST = 7 * 24 * 3600 * 1_000_000

Rank = Literal["ceil", "round"]
OutOfRange = Literal["raise", "clamp"]


def _check_rank(rank: str) -> bool:
    if rank == "ceil":
        return True
    if rank == "round":
        return False
    raise ValueError(f"rank must be 'ceil' (Java/Rust) or 'round' (C/Go), got {rank!r}")


def _check_quantile(q: float) -> float:
    qf = float(q)
    if not 0.0 <= qf <= 1.0 or math.isnan(qf):
        raise ValueError(f"quantile must be within [0, 1], got {q!r}")
    return qf


class HdrHistogram:
    """Log-linear histogram of non-negative integers with HdrHistogram's buckets and encoding.

    Every value is kept to ``significant_figures`` decimal digits: a reported value is within
    ``2**-(log2(sub_bucket_count) - 1)`` (1/128, under 0.79 %, at 2 figures) of the true one for
    values of at least ``sub_bucket_count / 2 * 2**unit_magnitude``; below that the resolution is
    ``2**unit_magnitude`` (exact values when ``lowest`` is 1).

    Parameters
    ----------
    lowest:
        Lowest discernible value (>= 1).
    highest:
        Highest trackable value (default: seven days in microseconds).
    significant_figures:
        0 to 5 (default 2).
    out_of_range:
        What :meth:`record` does with a negative value or one above the trackable range:
        ``"raise"`` (default) raises :class:`ValueError` naming the value and the range and records
        nothing from that call past the bad value (values before it in an array stay recorded);
        ``"clamp"`` records it as 0 (negative) or ``highest`` and counts it in :attr:`clamped_count`.

    Examples
    --------
    >>> import numpy as np
    >>> h = HdrHistogram(highest=3_600_000_000, significant_figures=3)
    >>> h.record(np.array([1000, 2000, 3000]))
    >>> h.total_count, h.value_at_quantile(0.5)
    (3, 2000)
    >>> HdrHistogram.decode(h.encode()) == h
    True
    """

    __slots__ = (
        "_clamp_to",
        "_dense",
        "_geometry",
        "_half",
        "_out_of_range",
        "_stage",
        "_stage_max",
        "_sum",
        "_unit",
        "clamped_count",
    )

    def __init__(
        self,
        lowest: int = 1,
        highest: int = DEFAULT_HIGHEST,
        significant_figures: int = 2,
        *,
        out_of_range: OutOfRange = "raise",
    ) -> None:
        self._geometry = Geometry(int(lowest), int(highest), int(significant_figures))
        if out_of_range not in ("raise", "clamp"):
            raise ValueError(f"out_of_range must be 'raise' or 'clamp', got {out_of_range!r}")
        self._out_of_range: OutOfRange = out_of_range
        self._stage: list[int] = []
        self._stage_max = self._geometry.highest
        self._dense = np.zeros(self._geometry.counts_len, dtype=np.int64)
        self._sum = 0
        self.clamped_count = 0
        self._clamp_to = self._geometry.highest if out_of_range == "clamp" else -1
        self._unit = self._geometry.unit_magnitude
        self._half = self._geometry.half_magnitude

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def _assemble(
        cls,
        geometry: Geometry,
        counts: npt.NDArray[np.int64],
        total: int,
        *,
        out_of_range: OutOfRange = "raise",
        clamped_count: int = 0,
    ) -> HdrHistogram:
        """A histogram that takes over ``counts`` (int64, at least ``geometry.counts_len`` long, owned
        by nobody else) without re-deriving or re-validating the geometry: the one place, besides
        ``__init__``, that sets every slot."""
        h = cls.__new__(cls)
        h._geometry = geometry
        h._out_of_range = out_of_range
        h._clamp_to = geometry.highest if out_of_range == "clamp" else -1
        h._unit = geometry.unit_magnitude
        h._half = geometry.half_magnitude
        h._stage = []
        h._stage_max = geometry.highest
        h._dense = counts
        h._sum = total
        h.clamped_count = clamped_count
        return h

    @classmethod
    def from_counts(
        cls,
        counts: npt.ArrayLike,
        lowest: int = 1,
        highest: int = DEFAULT_HIGHEST,
        significant_figures: int = 2,
    ) -> HdrHistogram:
        """A histogram holding a copy of a dense ``counts`` array of this geometry."""
        h = cls(lowest, highest, significant_figures)
        arr = np.asarray(counts, dtype=np.int64)
        if arr.ndim != 1:
            raise ValueError(f"counts must be one-dimensional, got shape {arr.shape}")
        if arr.size and arr.min() < 0:
            raise ValueError("counts must be non-negative")
        if arr.shape[0] > h._counts.shape[0]:
            grown = np.zeros(arr.shape[0], dtype=np.int64)
            h._counts = grown
        h._counts[: arr.shape[0]] = arr
        h._total = int(arr.sum())
        return h

    @classmethod
    def from_sparse(
        cls,
        indices: npt.ArrayLike,
        counts: npt.ArrayLike,
        lowest: int = 1,
        highest: int = DEFAULT_HIGHEST,
        significant_figures: int = 2,
    ) -> HdrHistogram:
        """A histogram from non-zero ``indices`` and their ``counts`` (see :meth:`to_sparse`)."""
        h = cls(lowest, highest, significant_figures)
        idx = np.asarray(indices, dtype=np.int64)
        cnt = np.asarray(counts, dtype=np.int64)
        h._add_sparse(idx, cnt)
        return h

    @classmethod
    def decode(cls, data: str | bytes | bytearray | memoryview) -> HdrHistogram:
        """Read an HdrHistogram V2 encoding: ``HISTFAAA…`` base64 text or raw compressed bytes.

        Raises :class:`ValueError` for anything that is not a valid encoding.
        """
        decoded = codec._decode(data)  # the counts and their total, from one walk
        if decoded.overflowed:
            raise ValueError(codec._TOTAL_OVERFLOW)
        # the geometry was validated by the decoder; the decoded array is new and nobody else's,
        # at least counts_len long (longer when counts lie above highest): taken over, not copied
        return cls._assemble(decoded.header.geometry, decoded.counts, decoded.total)

    # ------------------------------------------------------------------ properties
    @property
    def geometry(self) -> Geometry:
        """The bucket layout (lowest, highest, significant figures and derived sizes)."""
        return self._geometry

    @property
    def lowest(self) -> int:
        return self._geometry.lowest

    @property
    def highest(self) -> int:
        return self._geometry.highest

    @property
    def significant_figures(self) -> int:
        return self._geometry.significant_figures

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        """The dense counts array (read-only view; index ``i`` covers :meth:`bucket_range` ``(i)``)."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    # Single values recorded one at a time wait in ``_stage`` (a plain list: an append costs far
    # less than a numpy element update) and go through the batch kernel when 4096 have gathered
    # or anything reads the counts; ``_counts``/``_total`` are the drained views every method uses.
    @property
    def _counts(self) -> npt.NDArray[np.int64]:
        if self._stage:
            self._drain()
        return self._dense

    @_counts.setter
    def _counts(self, counts: npt.NDArray[np.int64]) -> None:
        if self._stage:
            self._drain()
        self._dense = counts

    @property
    def _total(self) -> int:
        if self._stage:
            self._drain()
        return self._sum

    @_total.setter
    def _total(self, total: int) -> None:
        if self._stage:
            self._drain()
        self._sum = total

    def _drain(self) -> None:
        """Count the staged single values (each already known to be within [0, highest])."""
        values = np.array(self._stage, dtype=np.int64)
        self._stage.clear()
        _hdr.record_values(self._dense, values, self._unit, self._half, self._clamp_to)
        self._sum += values.shape[0]

    @property
    def total_count(self) -> int:
        """Number of recorded values."""
        return self._total

    def __len__(self) -> int:
        return self._total

    # ------------------------------------------------------------------ recording
    def record(
        self,
        values: int | npt.ArrayLike,
        count: int | npt.ArrayLike | None = None,
        *,
        expected_interval: int | None = None,
    ) -> None:
        """Record one value or a whole array of values in one kernel call.

        Parameters
        ----------
        values:
            A non-negative integer or an array of them (integer dtype, or floats holding integers).
        count:
            How many times to record each value: an int for all, or an array matching ``values``.
        expected_interval:
            Coordinated-omission correction: for a value ``v`` above the interval, also record
            ``v - interval, v - 2*interval, …`` while they are >= the interval (Java/C semantics:
            25 with interval 10 adds 15 only).
        """
        if (
            type(values) is int
            and count is None
            and expected_interval is None
            and 0 <= values <= self._stage_max
        ):
            stage = self._stage
            stage.append(values)
            if len(stage) >= _STAGE_LIMIT:
                self._drain()
            return
        if count is None and expected_interval is None and isinstance(values, int | np.integer):
            self._record_one(int(values))
            return
        arr, huge_at, huge = self._as_values(values)
        if huge_at >= 0 and self._clamp_to < 0:
            # record what comes before the first value beyond int64, as for any out-of-range value
            if huge_at:
                head = count if count is None or np.ndim(count) == 0 else np.asarray(count)[:huge_at]
                self.record(arr[:huge_at], head, expected_interval=expected_interval)
            self._raise_out_of_range(huge)
        um, hm = self._unit, self._half
        if expected_interval is not None:
            if count is not None:
                raise ValueError("count and expected_interval cannot be combined")
            interval = int(expected_interval)
            if interval <= 0:
                raise ValueError(f"expected_interval must be > 0, got {expected_interval!r}")
            bad, clamped, recorded = _hdr.record_corrected(
                self._counts, arr, interval, um, hm, self._clamp_to
            )
            self._total += int(recorded)
            self.clamped_count += int(clamped)
            if bad >= 0:
                self._raise_out_of_range(int(arr[bad]))
            return
        if count is None:
            bad, clamped = _hdr.record_values(self._counts, arr, um, hm, self._clamp_to)
            recorded_n = arr.shape[0] if bad < 0 else int(bad)
            self._total += recorded_n
        else:
            weights = np.asarray(count)
            if weights.dtype.kind == "f":
                if not np.all(np.isfinite(weights) & (weights == np.floor(weights))):
                    raise ValueError(f"count must be a whole number; got {count!r}")
            elif weights.dtype.kind not in "iub":
                raise TypeError(
                    f"count must be an integer or an array of integers, got dtype {weights.dtype}"
                )
            weights = weights.astype(np.int64)
            if weights.ndim == 0:
                weights = np.full(arr.shape[0], int(weights), dtype=np.int64)
            if weights.shape != arr.shape:
                raise ValueError(
                    f"count must be a scalar or match values' shape {arr.shape}, got {weights.shape}"
                )
            bad, clamped = _hdr.record_weighted(self._counts, arr, weights, um, hm, self._clamp_to)
            stop = arr.shape[0] if bad < 0 else int(bad)
            self._total += int(weights[:stop].sum())
            if bad >= 0 and weights[bad] < 0:
                raise ValueError(f"count must be >= 0, got {int(weights[bad])} at position {bad}")
        self.clamped_count += int(clamped)
        if bad >= 0:
            self._raise_out_of_range(int(arr[bad]))

    def _record_one(self, value: int) -> None:
        idx = self._index(value) if value >= 0 else -1
        if idx < 0 or idx >= self._counts.shape[0]:
            if self._clamp_to < 0:
                self._raise_out_of_range(value)
            self.clamped_count += 1
            idx = self._index(0 if value < 0 else self._clamp_to)
        self._counts[idx] += 1
        self._total += 1

    def _as_values(self, values: Any) -> tuple[npt.NDArray[Any], int, Any]:
        """``values`` as a 1-D integer array, the position of the first value beyond int64 (-1 if
        none) and that value. Such values are replaced by int64 extremes, which the kernels treat as
        out of range (clamped and counted, or reported at their position)."""
        arr = np.asarray(values)
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        if arr.dtype.kind == "b":
            return arr.astype(np.int64), -1, None
        if arr.dtype.kind in "iu":
            if arr.dtype != np.uint64 or not arr.size or arr.max() <= _I64_MAX:
                return (arr if arr.dtype.kind == "i" else arr.astype(np.int64)), -1, None
            big = arr > _I64_MAX
            first = int(np.argmax(big))
            bad = arr[first]
            return np.where(big, _I64_MAX, arr).astype(np.int64), first, int(bad)
        if arr.dtype.kind == "f":
            integral = np.isfinite(arr) & (arr == np.floor(arr))
            if not integral.all():
                raise ValueError(f"values must be integers; got {arr[~integral][0]!r}")
            big = np.abs(arr) >= 2.0**63
            if not big.any():
                return arr.astype(np.int64), -1, None
            first = int(np.argmax(big))
            bad = arr[first]
            out = np.where(big, 0.0, arr).astype(np.int64)
            out[big & (arr > 0)] = _I64_MAX
            out[big & (arr < 0)] = -1
            return out, first, int(bad)
        raise TypeError(f"values must be integers, got an array of dtype {arr.dtype}")

    def _raise_out_of_range(self, value: int) -> None:
        top = self.highest_trackable
        raise ValueError(
            f"value {value} is outside the trackable range [0, {top}] of this histogram "
            f"(lowest={self.lowest}, highest={self.highest}); pass out_of_range='clamp' to clamp "
            "and count such values instead"
        )

    @property
    def highest_trackable(self) -> int:
        """Largest value the counts array can hold (>= ``highest``; the top of its last bucket)."""
        g = self._geometry
        return int(_hdr.highest_equivalent(self._counts.shape[0] - 1, g.unit_magnitude, g.half_magnitude))

    def _index(self, value: int) -> int:
        um, hm = self._unit, self._half
        bucket = (value | (((1 << (hm + 1)) - 1) << um)).bit_length() - um - hm - 1
        return ((bucket + 1) << hm) + (value >> (bucket + um)) - (1 << hm)

    def reset(self) -> None:
        """Forget every recorded value."""
        self._counts[:] = 0
        self._total = 0
        self.clamped_count = 0

    # ------------------------------------------------------------------ queries
    def value_at_quantile(self, q: float, *, rank: Rank = "ceil") -> int:
        """Value at quantile ``q`` in [0, 1] (0 when empty).

        The highest equivalent value of the bucket where the cumulative count reaches the rank
        (the lowest equivalent value for ``q == 0``). ``rank="ceil"`` (default, Java):
        ``max(1, ceil(q * total))`` with ``q`` nudged down one ulp; ``rank="round"`` (C, Go):
        ``max(1, floor(q * total + 0.5))``.
        """
        return int(self.values_at_quantiles([q], rank=rank)[0])

    def values_at_quantiles(
        self, quantiles: Sequence[float] | npt.ArrayLike, *, rank: Rank = "ceil"
    ) -> npt.NDArray[np.int64]:
        """Values at several quantiles, in one pass over the counts."""
        qs = np.asarray(quantiles, dtype=np.float64).reshape(-1)
        for q in qs:
            _check_quantile(float(q))
        g = self._geometry
        return _q.values_at_quantiles(  # type: ignore[no-any-return]
            self._counts, self._total, qs, _check_rank(rank), g.unit_magnitude, g.half_magnitude
        )

    def value_at_percentile(self, percentile: float, *, rank: Rank = "ceil") -> int:
        """Like :meth:`value_at_quantile` with ``percentile`` in [0, 100]."""
        return self.value_at_quantile(float(percentile) / 100.0, rank=rank)

    def quantile_at_value(self, value: int) -> float:
        """Fraction of recorded values in buckets at or below ``value``'s bucket (0.0 when empty)."""
        if self._total == 0:
            return 0.0
        if value < 0:
            return 0.0
        idx = min(self._index(int(value)), self._counts.shape[0] - 1)
        return float(self._counts[: idx + 1].sum()) / self._total

    def count_between(self, low: int, high: int) -> int:
        """Recorded values whose buckets lie between ``low``'s and ``high``'s buckets (inclusive)."""
        if low > high:
            raise ValueError(f"low must be <= high, got low={low}, high={high}")
        lo = self._index(max(int(low), 0))
        hi = min(self._index(max(int(high), 0)), self._counts.shape[0] - 1)
        return int(self._counts[lo : hi + 1].sum()) if lo <= hi else 0

    def count_at(self, value: int) -> int:
        """Count in ``value``'s bucket."""
        idx = self._index(int(value)) if value >= 0 else -1
        if idx < 0 or idx >= self._counts.shape[0]:
            return 0
        return int(self._counts[idx])

    @property
    def min(self) -> int:
        """Lowest equivalent value of the lowest non-empty bucket (0 when empty or when 0 was recorded)."""
        first, _ = _q.extreme_indices(self._counts)
        if first <= 0:
            return 0
        g = self._geometry
        return int(_hdr.lowest_equivalent(first, g.unit_magnitude, g.half_magnitude))

    @property
    def max(self) -> int:
        """Highest equivalent value of the highest non-empty bucket (0 when empty)."""
        _, last = _q.extreme_indices(self._counts)
        if last < 0:
            return 0
        g = self._geometry
        return int(_hdr.highest_equivalent(last, g.unit_magnitude, g.half_magnitude))

    @property
    def mean(self) -> float:
        """Mean over each bucket's median equivalent value (0.0 when empty)."""
        g = self._geometry
        return float(_q.mean_stddev(self._counts, g.unit_magnitude, g.half_magnitude)[0])

    @property
    def stddev(self) -> float:
        """Population standard deviation over median equivalent values (0.0 when empty)."""
        g = self._geometry
        return float(_q.mean_stddev(self._counts, g.unit_magnitude, g.half_magnitude)[1])

    def bucket_range(self, index: int) -> tuple[int, int]:
        """``(lowest, highest)`` value of the bucket at counts ``index``."""
        g = self._geometry
        um, hm = g.unit_magnitude, g.half_magnitude
        return int(_hdr.lowest_equivalent(index, um, hm)), int(_hdr.highest_equivalent(index, um, hm))

    def recorded(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The non-empty buckets as ``(values, counts)``; ``values`` are each bucket's lowest value."""
        idx = np.flatnonzero(self._counts)
        g = self._geometry
        values = lowest_equivalent_values(idx, g.unit_magnitude, g.half_magnitude)
        return values, self._counts[idx].copy()

    # ------------------------------------------------------------------ sparse form and merging
    def to_sparse(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Non-zero counts as ``(indices, counts)`` (ascending indices): compact for storage."""
        idx = np.flatnonzero(self._counts).astype(np.int64)
        return idx, self._counts[idx].copy()

    def add_sparse(self, indices: npt.ArrayLike, counts: npt.ArrayLike) -> None:
        """Add sparse counts of the same geometry (as returned by :meth:`to_sparse`)."""
        self._add_sparse(np.asarray(indices, dtype=np.int64), np.asarray(counts, dtype=np.int64))

    def _add_sparse(self, idx: npt.NDArray[np.int64], cnt: npt.NDArray[np.int64]) -> None:
        if idx.shape != cnt.shape or idx.ndim != 1:
            raise ValueError(f"indices and counts must be 1-D of equal length, got {idx.shape}, {cnt.shape}")
        if idx.size == 0:
            return
        if idx.min() < 0 or cnt.min() < 0:
            raise ValueError("sparse indices and counts must be non-negative")
        top = int(idx.max())
        if top >= self._counts.shape[0]:
            limit = self._geometry.counts_len
            raise ValueError(
                f"sparse index {top} is beyond this histogram's {limit} buckets (highest={self.highest})"
            )
        np.add.at(self._counts, idx, cnt)
        self._total += int(cnt.sum())

    def _check_compatible(self, other: object) -> HdrHistogram:
        if not isinstance(other, HdrHistogram):
            raise TypeError(f"can only merge an HdrHistogram, got {type(other).__name__}")
        if not self._geometry.compatible_with(other._geometry):
            raise ValueError(
                "incompatible histograms: "
                f"lowest={self.lowest}/significant_figures={self.significant_figures} vs "
                f"lowest={other.lowest}/significant_figures={other.significant_figures} "
                "map values to different buckets"
            )
        return other

    def add(self, other: HdrHistogram) -> HdrHistogram:
        """Add ``other``'s counts into this histogram (in place) and return ``self``.

        Both must share lowest and significant figures; ``other`` may have a different ``highest``
        as long as its recorded values fit here.
        """
        o = self._check_compatible(other)
        n = o._counts.shape[0]
        if n > self._counts.shape[0]:
            extra = o._counts[self._counts.shape[0] :]
            if extra.any():
                top = int(np.flatnonzero(extra)[-1]) + self._counts.shape[0]
                self._raise_out_of_range(
                    int(
                        lowest_equivalent_values(
                            np.array([top]),
                            self._geometry.unit_magnitude,
                            self._geometry.half_magnitude,
                        )[0]
                    )
                )
            n = self._counts.shape[0]
        self._counts[:n] += o._counts[:n]
        self._total += o._total
        return self

    def subtract(self, other: HdrHistogram) -> HdrHistogram:
        """Remove ``other``'s counts from this histogram (in place); every count must stay >= 0."""
        o = self._check_compatible(other)
        n = min(o._counts.shape[0], self._counts.shape[0])
        if o._counts[n:].any() or np.any(self._counts[:n] < o._counts[:n]):
            raise ValueError("cannot subtract: other holds counts this histogram does not have")
        self._counts[:n] -= o._counts[:n]
        self._total -= o._total
        return self

    def copy(self) -> HdrHistogram:
        """An independent copy."""
        return HdrHistogram._assemble(
            self._geometry,
            self._counts.copy(),
            self._total,
            out_of_range=self._out_of_range,
            clamped_count=self.clamped_count,
        )

    def __add__(self, other: HdrHistogram) -> HdrHistogram:
        return self.copy().add(other)

    def __iadd__(self, other: HdrHistogram) -> HdrHistogram:
        return self.add(other)

    def __sub__(self, other: HdrHistogram) -> HdrHistogram:
        return self.copy().subtract(other)

    def __isub__(self, other: HdrHistogram) -> HdrHistogram:
        return self.subtract(other)

    def __radd__(self, other: object) -> HdrHistogram:
        # lets sum() start from 0
        if isinstance(other, int) and other == 0:
            return self.copy()
        return NotImplemented

    @staticmethod
    def merged(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
        """One histogram holding the sum of ``histograms`` (at least one)."""
        it = iter(histograms)
        try:
            out = next(it).copy()
        except StopIteration:
            raise ValueError("merged() needs at least one histogram") from None
        for h in it:
            out.add(h)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HdrHistogram):
            return NotImplemented
        if not self._geometry.compatible_with(other._geometry):
            return False
        a, b = self._counts, other._counts
        n = min(a.shape[0], b.shape[0])
        return bool(np.array_equal(a[:n], b[:n]) and not a[n:].any() and not b[n:].any())

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ encoding and pickling
    def to_bytes(self, *, level: int = 6) -> bytes:
        """Raw HdrHistogram V2 compressed bytes (what the snapshot's ``*_hdr`` columns hold)."""
        return codec.encode_counts(self._geometry, self._counts, level=level)

    def encode(self, *, level: int = 6) -> str:
        """HdrHistogram V2 ``HISTFAAA…`` base64 text, readable by the Java, C, Go and Python libraries."""
        return codec.encode_counts_base64(self._geometry, self._counts, level=level)

    def __reduce__(self) -> tuple[Any, ...]:
        idx, cnt = self.to_sparse()
        g = self._geometry
        return (
            _restore,
            (
                g.lowest,
                g.highest,
                g.significant_figures,
                self._out_of_range,
                self._counts.shape[0],
                idx,
                cnt,
                self.clamped_count,
            ),
        )

    def __repr__(self) -> str:
        g = self._geometry
        return (
            f"HdrHistogram(lowest={g.lowest}, highest={g.highest}, "
            f"significant_figures={g.significant_figures}) <total_count={self._total}>"
        )


_STAGE_LIMIT = 4096  # single values staged before they go through the batch kernel


def _restore(
    lowest: int,
    highest: int,
    sig: int,
    out_of_range: OutOfRange,
    length: SupportsIndex,
    idx: npt.NDArray[np.int64],
    cnt: npt.NDArray[np.int64],
    clamped: int,
) -> HdrHistogram:
    h = HdrHistogram(lowest, highest, sig, out_of_range=out_of_range)
    if int(length) > h._counts.shape[0]:
        h._counts = np.zeros(int(length), dtype=np.int64)
    h._add_sparse(idx, cnt)
    h.clamped_count = clamped
    return h
