"""Kernels for the counts payload of the HdrHistogram V2 encoding.

The payload is a sequence of ZigZag-encoded LEB128 varints, "LEB128-64b9B" as in Java's
``ZigZagEncoding``: up to eight 7-bit groups with a continuation bit, then a ninth byte that carries
the top 8 bits whole, so any int64 fits in at most 9 bytes. A value ``v >= 0`` is the count of the
next index; ``v < 0`` skips ``-v`` indices (a run of zero counts).

The encoders reproduce Java's ``fillBufferFromCountsArray`` byte for byte: counts up to the last
non-zero index, a lone zero written as ``0`` and a run of ``n > 1`` zeros as ``-n``; an empty
histogram writes one ``0`` (counts limit 1, as Java's ``countsArrayIndex(maxValue = 0) + 1``). They
validate their input and write the payload in the same single pass, into a buffer of the worst-case
size (9 bytes per varint) allocated up front, so no pass only measures.

The decoder also walks the payload once: it validates each varint and writes the counts into an
array the caller allocates from the header geometry (bounded by the geometry, not by the input).
Only when a count lies beyond that array (written by an auto-resizing writer) does the caller walk
again, into an array of the exact length the first walk measured.

Each kernel reads or writes its varints at a single place in its loop, written out in the loop body:
numba does not inline calls between kernels, and a call per varint doubles the time of a walk.
Kernels return status codes; the caller turns them into errors.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

__all__ = [
    "INDEX_TOO_LARGE",
    "NEGATIVE_COUNT",
    "NEGATIVE_INDEX",
    "OK",
    "TRUNCATED",
    "UNSORTED_INDEX",
    "checked_total",
    "decode_counts",
    "encode_dense",
    "encode_sparse",
]

OK = 0
"""The input is well formed."""
TRUNCATED = 1
"""Decoding: the payload ends inside a varint."""
INDEX_TOO_LARGE = 2
"""A count (or, decoding, a zero run) reaches past the largest index the geometry can address."""
NEGATIVE_COUNT = 3
"""Encoding: a count is negative."""
NEGATIVE_INDEX = 4
"""Sparse encoding: an index is negative."""
UNSORTED_INDEX = 5
"""Sparse encoding: an index is not above the one before it."""

_MAX_VARINT_BYTES = 9
_INT64_MAX = 0x7FFFFFFFFFFFFFFF


@kernel
def checked_total(counts):
    """Exact sum of non-negative int64 ``counts``: ``(total, overflowed)``.

    ``overflowed`` is True when the true sum exceeds ``2**63 - 1``; ``total`` is then the int64
    maximum (a saturated value, for callers that prefer saturation to an error).
    """
    limit = np.int64(_INT64_MAX)
    total = np.int64(0)
    for i in range(counts.shape[0]):
        c = np.int64(counts[i])
        if c > limit - total:
            return limit, True
        total += c
    return total, False


@kernel
def encode_dense(counts, max_len, offset):
    """Encode dense ``counts`` as Java does, validating them on the way.

    Returns ``(status, index, out, size)``: the payload is ``out[offset:offset + size]`` (the first
    ``offset`` bytes of ``out`` are left for the caller's header). ``status`` is ``OK``,
    ``NEGATIVE_COUNT`` (``index`` of the first negative count) or ``INDEX_TOO_LARGE`` (``index`` of
    the last non-zero count, at or past ``max_len``); ``out`` is then empty.
    """
    limit = counts.shape[0]
    while limit > 0 and counts[limit - 1] == 0:
        limit -= 1
    if limit > max_len:
        return INDEX_TOO_LARGE, limit - 1, np.empty(0, dtype=np.uint8), 0
    n = max(limit, 1)  # an empty histogram writes the count (zero) of index 0
    # One varint per index at most, and at most 9 bytes per varint.
    out = np.empty(offset + _MAX_VARINT_BYTES * n, dtype=np.uint8)
    pos = offset
    i = 0
    while i < n:
        count = np.int64(counts[i]) if i < limit else np.int64(0)
        if count > 0:
            z = np.uint64(count) << np.uint64(1)  # ZigZag of count >= 0
            i += 1
        elif count == 0:
            j = i + 1
            while j < limit and counts[j] == 0:
                j += 1
            run = j - i
            i = j
            # a lone zero is written as the count 0, a run of n > 1 as -n (ZigZag 2n - 1)
            z = np.uint64(0) if run == 1 else (np.uint64(run) << np.uint64(1)) - np.uint64(1)
        else:
            return NEGATIVE_COUNT, i, np.empty(0, dtype=np.uint8), 0
        # LEB128-64b9B: eight 7-bit groups with a continuation bit, then a whole ninth byte.
        for _ in range(8):
            if z < np.uint64(0x80):
                break
            out[pos] = np.uint8((z & np.uint64(0x7F)) | np.uint64(0x80))
            pos += 1
            z >>= np.uint64(7)
        out[pos] = np.uint8(z)
        pos += 1
    return OK, 0, out, pos - offset


@kernel
def encode_sparse(indices, counts, max_len, offset):
    """Encode ``counts[k]`` at strictly increasing ``indices[k]``, validating them on the way.

    Zero counts are skipped; the bytes are exactly those :func:`encode_dense` gives for the
    equivalent dense array. Returns ``(status, k, out, size)`` as :func:`encode_dense` does, ``k``
    being the position of the first bad entry when ``status`` is ``NEGATIVE_INDEX``,
    ``UNSORTED_INDEX``, ``NEGATIVE_COUNT`` or ``INDEX_TOO_LARGE`` (every entry is checked, zero
    counts included).
    """
    n = indices.shape[0]
    # A gap varint and a count varint per entry at most; one varint for an empty histogram.
    out = np.empty(offset + _MAX_VARINT_BYTES * (2 * n + 1), dtype=np.uint8)
    pos = offset
    next_index = np.int64(0)  # the index the next count varint describes
    previous = np.int64(-1)
    pending = np.int64(-1)  # a count to write after the gap just written
    k = 0
    while True:
        if pending >= 0:
            z = np.uint64(pending) << np.uint64(1)
            pending = -1
        else:
            index = np.int64(0)
            count = np.int64(0)
            while k < n:
                index = np.int64(indices[k])
                count = np.int64(counts[k])
                if index < 0:
                    return NEGATIVE_INDEX, k, np.empty(0, dtype=np.uint8), 0
                if index <= previous:
                    return UNSORTED_INDEX, k, np.empty(0, dtype=np.uint8), 0
                if count < 0:
                    return NEGATIVE_COUNT, k, np.empty(0, dtype=np.uint8), 0
                if index >= max_len:
                    return INDEX_TOO_LARGE, k, np.empty(0, dtype=np.uint8), 0
                previous = index
                k += 1
                if count != 0:
                    break
            if count == 0:  # no entry left
                if next_index > 0:
                    break
                z = np.uint64(0)  # an empty histogram: the count (zero) of index 0
                next_index = 1
            else:
                gap = index - next_index
                next_index = index + 1
                if gap == 0:
                    z = np.uint64(count) << np.uint64(1)
                else:
                    z = np.uint64(0) if gap == 1 else (np.uint64(gap) << np.uint64(1)) - np.uint64(1)
                    pending = count
        for _ in range(8):
            if z < np.uint64(0x80):
                break
            out[pos] = np.uint8((z & np.uint64(0x7F)) | np.uint64(0x80))
            pos += 1
            z >>= np.uint64(7)
        out[pos] = np.uint8(z)
        pos += 1
    return OK, 0, out, pos - offset


@kernel
def decode_counts(buf, start, end, out, max_len):
    """Validate the payload ``buf[start:end]`` and write its counts into zeroed ``out``.

    Returns ``(status, position, needed, total, overflowed)``: ``status`` is ``OK``, ``TRUNCATED``
    or ``INDEX_TOO_LARGE``, ``position`` the offset of the offending varint (``end`` when fine),
    ``needed`` one past the last index holding a non-zero count (0 when there is none), ``total``
    the sum of the counts and ``overflowed`` as in :func:`checked_total`. No count index may reach
    ``max_len``; a zero run may end exactly at it. Counts at indices past ``out``'s length are
    checked and summed but not written: when ``needed`` exceeds it, decode again into an array of
    ``needed`` counts.
    """
    n_out = out.shape[0]
    limit = np.int64(_INT64_MAX)
    index = np.int64(0)
    needed = np.int64(0)
    total = np.int64(0)
    overflowed = False
    pos = start
    while pos < end:
        at = pos
        # LEB128-64b9B: eight 7-bit groups with a continuation bit, then a whole ninth byte.
        b = np.uint64(buf[pos])
        pos += 1
        z = b & np.uint64(0x7F)
        if b >= np.uint64(0x80):
            shift = np.uint64(7)
            while True:
                if pos >= end:
                    return TRUNCATED, at, needed, total, overflowed
                b = np.uint64(buf[pos])
                pos += 1
                if shift == np.uint64(56):
                    z |= b << shift
                    break
                z |= (b & np.uint64(0x7F)) << shift
                if b < np.uint64(0x80):
                    break
                shift += np.uint64(7)
        half = np.int64(z >> np.uint64(1))
        if z & np.uint64(1):
            # A run of half + 1 zero counts: value = -half - 1 >= INT64_MIN; compare without
            # negating it (-INT64_MIN overflows).
            value = -half - np.int64(1)
            if value < index - max_len:
                return INDEX_TOO_LARGE, at, needed, total, overflowed
            index -= value
        else:
            if index >= max_len:
                return INDEX_TOO_LARGE, at, needed, total, overflowed
            if half != 0:
                if index < n_out:
                    out[index] = half
                needed = index + 1
                if half > limit - total:
                    total = limit
                    overflowed = True
                else:
                    total += half
            index += 1
    return OK, end, needed, total, overflowed
