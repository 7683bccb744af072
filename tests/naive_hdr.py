"""A naive HdrHistogram reference in plain Python, for checking the numba kernels and the codec.

Every function follows the Java reference (``AbstractHistogram.java``, ``ZigZagEncoding.java``)
statement by statement, with Python integers (no overflow) and no numba, so that it is slow but
obviously right. Where the C / Go / Python implementations differ (the percentile rank), both rules
are given.

Geometry is described as in ``jobmetrics._kernels.hdr``: ``unit_magnitude`` (floor(log2(lowest)))
and ``half_magnitude`` (log2 of half the sub-bucket count). :class:`Layout` derives them, and the
array sizes, from ``(lowest, highest, significant_figures)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

INT64_MAX = 2**63 - 1


# ------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Layout:
    """Java's derived fields for ``new Histogram(lowest, highest, significant_figures)``."""

    lowest: int
    highest: int
    significant_figures: int

    @property
    def unit_magnitude(self) -> int:
        """``floor(log2(lowest))``."""
        return self.lowest.bit_length() - 1

    @property
    def sub_bucket_count_magnitude(self) -> int:
        """``ceil(log2(2 * 10**significant_figures))``."""
        largest_value_with_single_unit_resolution = 2 * 10**self.significant_figures
        return (largest_value_with_single_unit_resolution - 1).bit_length()

    @property
    def half_magnitude(self) -> int:
        """Java's ``subBucketHalfCountMagnitude``: ``max(sub_bucket_count_magnitude, 1) - 1``."""
        return max(self.sub_bucket_count_magnitude, 1) - 1

    @property
    def sub_bucket_count(self) -> int:
        return 2 ** (self.half_magnitude + 1)

    @property
    def bucket_count(self) -> int:
        """Java's ``getBucketsNeededToCoverValue(highest)``."""
        smallest_untrackable_value = self.sub_bucket_count << self.unit_magnitude
        buckets_needed = 1
        while smallest_untrackable_value <= self.highest:
            if smallest_untrackable_value > INT64_MAX // 2:
                return buckets_needed + 1
            smallest_untrackable_value <<= 1
            buckets_needed += 1
        return buckets_needed

    @property
    def counts_len(self) -> int:
        return (self.bucket_count + 1) * (self.sub_bucket_count // 2)

    @property
    def magnitudes(self) -> tuple[int, int]:
        """``(unit_magnitude, half_magnitude)``, the arguments of the functions below."""
        return self.unit_magnitude, self.half_magnitude


def _bucket_index(value: int, unit_magnitude: int, half_magnitude: int) -> int:
    sub_bucket_count = 2 ** (half_magnitude + 1)
    sub_bucket_mask = (sub_bucket_count - 1) << unit_magnitude
    leading_zero_count_base = 64 - unit_magnitude - half_magnitude - 1
    number_of_leading_zeros = 64 - (value | sub_bucket_mask).bit_length()
    return leading_zero_count_base - number_of_leading_zeros


def _sub_bucket_index(value: int, bucket_index: int, unit_magnitude: int) -> int:
    return value >> (bucket_index + unit_magnitude)


def counts_index(value: int, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``countsArrayIndex(value)`` for ``0 <= value < 2**63``."""
    if not 0 <= value <= INT64_MAX:
        raise ValueError(f"value must be in [0, 2**63), got {value}")
    bucket_index = _bucket_index(value, unit_magnitude, half_magnitude)
    sub_bucket_index = _sub_bucket_index(value, bucket_index, unit_magnitude)
    bucket_base_index = (bucket_index + 1) << half_magnitude
    offset_in_bucket = sub_bucket_index - 2**half_magnitude
    return bucket_base_index + offset_in_bucket


def value_from_index(index: int, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``valueFromIndex(index)``: the lowest value that maps to ``index``."""
    sub_bucket_half_count = 2**half_magnitude
    bucket_index = (index >> half_magnitude) - 1
    sub_bucket_index = (index & (sub_bucket_half_count - 1)) + sub_bucket_half_count
    if bucket_index < 0:
        sub_bucket_index -= sub_bucket_half_count
        bucket_index = 0
    return sub_bucket_index << (bucket_index + unit_magnitude)


def size_of_equivalent_value_range(value: int, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``sizeOfEquivalentValueRange(value)``: width of the bucket holding ``value``."""
    bucket_index = _bucket_index(value, unit_magnitude, half_magnitude)
    sub_bucket_index = _sub_bucket_index(value, bucket_index, unit_magnitude)
    adjust = 1 if sub_bucket_index >= 2 ** (half_magnitude + 1) else 0
    return 1 << (unit_magnitude + bucket_index + adjust)


def lowest_equivalent_value(value: int, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``lowestEquivalentValue(value)``."""
    bucket_index = _bucket_index(value, unit_magnitude, half_magnitude)
    sub_bucket_index = _sub_bucket_index(value, bucket_index, unit_magnitude)
    return sub_bucket_index << (bucket_index + unit_magnitude)


def highest_equivalent_value(value: int, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``highestEquivalentValue(value)`` = ``nextNonEquivalentValue(value) - 1``."""
    return (
        lowest_equivalent_value(value, unit_magnitude, half_magnitude)
        + size_of_equivalent_value_range(value, unit_magnitude, half_magnitude)
        - 1
    )


def median_equivalent_value(value: int, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``medianEquivalentValue(value)``."""
    return lowest_equivalent_value(value, unit_magnitude, half_magnitude) + (
        size_of_equivalent_value_range(value, unit_magnitude, half_magnitude) >> 1
    )


# Index-based forms, the signatures of the kernels in ``jobmetrics._kernels.hdr``.


def lowest_equivalent(index: int, unit_magnitude: int, half_magnitude: int) -> int:
    return value_from_index(index, unit_magnitude, half_magnitude)


def highest_equivalent(index: int, unit_magnitude: int, half_magnitude: int) -> int:
    value = value_from_index(index, unit_magnitude, half_magnitude)
    return highest_equivalent_value(value, unit_magnitude, half_magnitude)


def median_equivalent(index: int, unit_magnitude: int, half_magnitude: int) -> int:
    value = value_from_index(index, unit_magnitude, half_magnitude)
    return median_equivalent_value(value, unit_magnitude, half_magnitude)


# ------------------------------------------------------------------------------------- recording


def record(counts: np.ndarray, value: int, unit_magnitude: int, half_magnitude: int, n: int = 1):
    """Java ``recordValueWithCount``; raises IndexError when the value is out of range."""
    index = counts_index(value, unit_magnitude, half_magnitude)
    if index >= len(counts):
        raise IndexError(f"value {value} (index {index}) outside counts of length {len(counts)}")
    counts[index] += n


def counts_from_values(layout: Layout, values: Iterable[int]) -> np.ndarray:
    """Dense int64 counts of ``layout`` with one count per value."""
    counts = np.zeros(layout.counts_len, dtype=np.int64)
    for value in values:
        record(counts, int(value), *layout.magnitudes)
    return counts


def corrected_values(value: int, expected_interval: int) -> list[int]:
    """Values Java's ``recordSingleValueWithExpectedInterval`` records.

    ``value`` itself, then ``value - k * expected_interval`` for k >= 1 while the result is
    ``>= expected_interval`` (HdrHistogram_py also records values below the interval; Java, C and
    Go do not).
    """
    values = [value]
    if expected_interval <= 0 or value <= expected_interval:
        return values
    missing_value = value - expected_interval
    while missing_value >= expected_interval:
        values.append(missing_value)
        missing_value -= expected_interval
    return values


# ------------------------------------------------------------------------------------- statistics


def _nonzero(counts: np.ndarray) -> Iterator[tuple[int, int]]:
    for index in np.flatnonzero(counts):
        yield int(index), int(counts[index])


def total_count(counts: np.ndarray) -> int:
    """Exact sum as a Python int (may exceed int64)."""
    return sum(int(c) for c in counts)


def min_value(counts: np.ndarray, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``getMinValue``: 0 when empty or when index 0 holds counts."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0 or nonzero[0] == 0:
        return 0
    return lowest_equivalent(int(nonzero[0]), unit_magnitude, half_magnitude)


def max_value(counts: np.ndarray, unit_magnitude: int, half_magnitude: int) -> int:
    """Java ``getMaxValue``: highest equivalent value of the last non-zero index, 0 when empty."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return 0
    return highest_equivalent(int(nonzero[-1]), unit_magnitude, half_magnitude)


def mean(counts: np.ndarray, unit_magnitude: int, half_magnitude: int) -> float:
    """Java ``getMean``: median-equivalent values weighted by counts, in float64 as Java sums."""
    total = total_count(counts)
    if total == 0:
        return 0.0
    total_value = 0.0
    for index, count in _nonzero(counts):
        total_value += median_equivalent(index, unit_magnitude, half_magnitude) * float(count)
    return total_value / float(total)


def stddev(counts: np.ndarray, unit_magnitude: int, half_magnitude: int) -> float:
    """Java ``getStdDeviation`` (population standard deviation over median-equivalent values)."""
    total = total_count(counts)
    if total == 0:
        return 0.0
    mu = mean(counts, unit_magnitude, half_magnitude)
    geometric_deviation_total = 0.0
    for index, count in _nonzero(counts):
        deviation = float(median_equivalent(index, unit_magnitude, half_magnitude)) - mu
        geometric_deviation_total += (deviation * deviation) * float(count)
    return math.sqrt(geometric_deviation_total / float(total))


def rank_ceil(percentile: float, total: int) -> int:
    """Java ``getValueAtPercentile`` rank: ``max(1, ceil(nextDown(p) / 100 * total))``."""
    requested = min(max(math.nextafter(percentile, -math.inf), 0.0), 100.0)
    fp_count_at_percentile = (requested / 100.0) * float(total)
    return max(math.ceil(fp_count_at_percentile), 1)


def rank_round(percentile: float, total: int) -> int:
    """C ``hdr_value_at_percentile`` / Go / Python rank: ``max(1, int(p / 100 * total + 0.5))``."""
    requested = min(percentile, 100.0)
    return max(int((requested / 100.0) * float(total) + 0.5), 1)


def value_at_percentile(
    counts: np.ndarray,
    percentile: float,
    unit_magnitude: int,
    half_magnitude: int,
    rank: str = "ceil",
) -> int:
    """Value at ``percentile`` (0..100) with the ``"ceil"`` (Java) or ``"round"`` (C) rank.

    The highest equivalent value of the first index where the running count reaches the rank, or
    its lowest equivalent value when ``percentile == 0``; 0 for an empty histogram.
    """
    total = total_count(counts)
    if total == 0:
        return 0
    if rank == "ceil":
        count_at_percentile = rank_ceil(percentile, total)
    elif rank == "round":
        count_at_percentile = rank_round(percentile, total)
    else:
        raise ValueError(f"rank must be 'ceil' or 'round', got {rank!r}")
    running = 0
    for index, count in _nonzero(counts):
        running += count
        if running >= count_at_percentile:
            if percentile == 0.0:
                return lowest_equivalent(index, unit_magnitude, half_magnitude)
            return highest_equivalent(index, unit_magnitude, half_magnitude)
    return 0


@dataclass(frozen=True)
class Stats:
    total: int
    min: int
    max: int
    mean: float
    stddev: float


def stats(counts: np.ndarray, unit_magnitude: int, half_magnitude: int) -> Stats:
    """All the summary statistics at once."""
    return Stats(
        total=total_count(counts),
        min=min_value(counts, unit_magnitude, half_magnitude),
        max=max_value(counts, unit_magnitude, half_magnitude),
        mean=mean(counts, unit_magnitude, half_magnitude),
        stddev=stddev(counts, unit_magnitude, half_magnitude),
    )


# ------------------------------------------------------------------------------------- V2 payload


def zigzag_encode(value: int) -> bytes:
    """Java ``ZigZagEncoding.putLong``: ZigZag, then LEB128 with a full ninth byte."""
    if not -(2**63) <= value <= INT64_MAX:
        raise ValueError(f"value must fit in int64, got {value}")
    z = (value << 1) ^ (value >> 63)  # Python ints: arithmetic shift, as Java's >> on a long
    z &= 2**64 - 1
    out = bytearray()
    for _ in range(8):
        if z >> 7 == 0:
            out.append(z)
            return bytes(out)
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def zigzag_decode(data: bytes, pos: int) -> tuple[int, int]:
    """Java ``ZigZagEncoding.getLong`` at ``pos``: ``(value, next_pos)``.

    Raises IndexError when the varint is truncated.
    """
    z = 0
    for i in range(8):
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << (7 * i)
        if b & 0x80 == 0:
            break
    else:
        z |= data[pos] << 56
        pos += 1
    value = (z >> 1) ^ -(z & 1)
    return value, pos


def encode_payload(counts: np.ndarray) -> bytes:
    """Java ``fillBufferFromCountsArray`` for counts whose last non-zero index bounds the limit."""
    nonzero = np.flatnonzero(counts)
    counts_limit = int(nonzero[-1]) + 1 if nonzero.size else 1
    out = bytearray()
    src_index = 0
    while src_index < counts_limit:
        count = int(counts[src_index]) if src_index < len(counts) else 0
        src_index += 1
        if count < 0:
            raise ValueError(f"cannot encode negative count {count}")
        zeros_count = 0
        if count == 0:
            zeros_count = 1
            while src_index < counts_limit and int(counts[src_index]) == 0:
                zeros_count += 1
                src_index += 1
        out += zigzag_encode(-zeros_count if zeros_count > 1 else count)
    return bytes(out)


def decode_payload(payload: bytes) -> dict[int, int]:
    """Java ``fillCountsArrayFromSourceBuffer``: ``{index: count}`` of the non-zero counts."""
    counts: dict[int, int] = {}
    dst_index = 0
    pos = 0
    while pos < len(payload):
        count, pos = zigzag_decode(payload, pos)
        if count < 0:
            dst_index += -count
        else:
            if count:
                counts[dst_index] = count
            dst_index += 1
    return counts
