"""HdrHistogram bucket arithmetic and the recording / query kernels.

The geometry is HdrHistogram's (Java ``AbstractHistogram``, C ``hdr_histogram.c``): a value maps to
``bucket_index`` (its power of two above the sub-bucket range, found with count-leading-zeros) and a
``sub_bucket_index`` (its top ``sub_bucket_count_magnitude`` bits). Two integers describe a geometry
here: ``unit_magnitude`` (floor(log2(lowest))) and ``half_magnitude`` (log2 of half the sub-bucket
count). Every function below takes those two and derives the rest, so the arithmetic lives in one place.
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from ._jit import kernel

__all__ = [
    "counts_index",
    "highest_equivalent",
    "lowest_equivalent",
    "median_equivalent",
    "record_corrected",
    "record_values",
    "record_weighted",
    "value_from_index",
]


@kernel
def counts_index(value, unit_magnitude, half_magnitude):
    """Index in the counts array of a non-negative ``value`` (may be >= the array length)."""
    sub_mag = half_magnitude + 1
    mask = np.int64(((1 << sub_mag) - 1) << unit_magnitude)
    base = 64 - unit_magnitude - sub_mag
    bucket = base - leading_zeros(np.int64(value) | mask)
    sub = np.int64(value) >> (bucket + unit_magnitude)
    return np.int64(((bucket + 1) << half_magnitude) + sub - (1 << half_magnitude))


@kernel
def value_from_index(index, unit_magnitude, half_magnitude):
    """Lowest value that maps to counts ``index``."""
    half = np.int64(1) << half_magnitude
    bucket = (np.int64(index) >> half_magnitude) - 1
    sub = (np.int64(index) & (half - 1)) + half
    if bucket < 0:
        sub -= half
        bucket = 0
    return sub << (bucket + unit_magnitude)


@kernel
def _range_size(index, unit_magnitude, half_magnitude):
    bucket = (np.int64(index) >> half_magnitude) - 1
    if bucket < 0:
        bucket = 0
    return np.int64(1) << (unit_magnitude + bucket)


@kernel
def lowest_equivalent(index, unit_magnitude, half_magnitude):
    """Lowest value of the bucket at ``index``."""
    return value_from_index(index, unit_magnitude, half_magnitude)


@kernel
def highest_equivalent(index, unit_magnitude, half_magnitude):
    """Highest value of the bucket at ``index``."""
    return (
        value_from_index(index, unit_magnitude, half_magnitude)
        + _range_size(index, unit_magnitude, half_magnitude)
        - 1
    )


@kernel
def median_equivalent(index, unit_magnitude, half_magnitude):
    """Middle value of the bucket at ``index`` (HdrHistogram's ``medianEquivalentValue``)."""
    return value_from_index(index, unit_magnitude, half_magnitude) + (
        _range_size(index, unit_magnitude, half_magnitude) >> 1
    )


@kernel
def record_values(counts, values, unit_magnitude, half_magnitude, clamp_to):
    """Add one count per value. Return ``(first_bad_position, n_clamped)``.

    A value outside ``[0, counts_len)`` in index space stops the kernel and its position is
    returned (nothing after it is recorded) unless ``clamp_to >= 0``: then it is recorded as
    ``clamp_to`` (negative values as 0) and counted in ``n_clamped``. ``first_bad_position`` is -1
    when every value was recorded.
    """
    n_len = counts.shape[0]
    sub_mag = half_magnitude + 1
    mask = np.int64(((1 << sub_mag) - 1) << unit_magnitude)
    base = 64 - unit_magnitude - sub_mag
    half = np.int64(1) << half_magnitude
    clamped = 0
    for i in range(values.shape[0]):
        v = np.int64(values[i])
        bucket = base - leading_zeros(v | mask)
        idx = ((bucket + 1) << half_magnitude) + (v >> (bucket + unit_magnitude)) - half
        if v < 0 or idx >= n_len:
            if clamp_to < 0:
                return i, clamped
            clamped += 1
            v = np.int64(0) if v < 0 else np.int64(clamp_to)
            idx = counts_index(v, unit_magnitude, half_magnitude)
        counts[idx] += 1
    return -1, clamped


@kernel
def record_weighted(counts, values, weights, unit_magnitude, half_magnitude, clamp_to):
    """Like :func:`record_values` with ``weights[i]`` counts for ``values[i]``.

    A negative weight is reported like a bad value (its position returned, nothing after it recorded).
    """
    n_len = counts.shape[0]
    clamped = 0
    for i in range(values.shape[0]):
        v = np.int64(values[i])
        w = np.int64(weights[i])
        if w < 0:
            return i, clamped
        idx = counts_index(v, unit_magnitude, half_magnitude) if v >= 0 else -1
        if idx < 0 or idx >= n_len:
            if clamp_to < 0:
                return i, clamped
            clamped += 1
            v = np.int64(0) if v < 0 else np.int64(clamp_to)
            idx = counts_index(v, unit_magnitude, half_magnitude)
        counts[idx] += w
    return -1, clamped


@kernel
def record_corrected(counts, values, expected_interval, unit_magnitude, half_magnitude, clamp_to):
    """Record values with coordinated-omission back-fill (Java/C semantics).

    For each value ``v > expected_interval`` the values ``v - k*expected_interval`` for k >= 1 are also
    recorded while they are ``>= expected_interval`` (so 25 with interval 10 adds 15, not 5). Returns
    ``(first_bad_position, n_clamped, n_recorded)``.
    """
    n_len = counts.shape[0]
    clamped = 0
    recorded = 0
    for i in range(values.shape[0]):
        v = np.int64(values[i])
        idx = counts_index(v, unit_magnitude, half_magnitude) if v >= 0 else -1
        if idx < 0 or idx >= n_len:
            if clamp_to < 0:
                return i, clamped, recorded
            clamped += 1
            v = np.int64(0) if v < 0 else np.int64(clamp_to)
            idx = counts_index(v, unit_magnitude, half_magnitude)
        counts[idx] += 1
        recorded += 1
        if expected_interval > 0 and v > expected_interval:
            missing = v - expected_interval
            while missing >= expected_interval:
                counts[counts_index(missing, unit_magnitude, half_magnitude)] += 1
                recorded += 1
                missing -= expected_interval
    return -1, clamped, recorded
