"""Kernels for the counts payload of the HdrHistogram V2 encoding.

The payload is a sequence of ZigZag-encoded LEB128 varints, "LEB128-64b9B" as in Java's
``ZigZagEncoding``: up to eight 7-bit groups with a continuation bit, then a ninth byte that carries
the top 8 bits whole, so any int64 fits in at most 9 bytes. A value ``v >= 0`` is the count of the
next index; ``v < 0`` skips ``-v`` indices (a run of zero counts).

The encoders reproduce Java's ``fillBufferFromCountsArray`` byte for byte: counts up to the last
non-zero index, a lone zero written as ``0`` and a run of ``n > 1`` zeros as ``-n``; an empty
histogram writes one ``0`` (counts limit 1, as Java's ``countsArrayIndex(maxValue = 0) + 1``).

The decoder walks the payload twice: :func:`scan_counts` validates it and measures the counts array
it needs (so nothing is allocated before the input is known to be sane), then :func:`fill_counts`
writes into a preallocated array. Kernels return status codes; the caller turns them into errors.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

__all__ = [
    "SCAN_INDEX_TOO_LARGE",
    "SCAN_OK",
    "SCAN_TRUNCATED",
    "checked_total",
    "encode_dense",
    "encode_sparse",
    "fill_counts",
    "scan_counts",
]

SCAN_OK = 0
"""The payload is well formed."""
SCAN_TRUNCATED = 1
"""The payload ends inside a varint."""
SCAN_INDEX_TOO_LARGE = 2
"""A count or a zero run reaches past the largest index the geometry can address."""


@kernel
def _read_zigzag(buf, pos, end):
    """Read one ZigZag LEB128-64b9B varint at ``pos``: ``(value, next_pos)``, ``next_pos = -1``
    when the varint is cut by ``end``."""
    value = np.uint64(0)
    shift = np.uint64(0)
    while True:
        if pos >= end:
            return np.int64(0), -1
        b = np.uint64(buf[pos])
        pos += 1
        if shift == np.uint64(56):
            # Ninth byte: all 8 bits are value bits.
            value |= b << shift
            break
        value |= (b & np.uint64(0x7F)) << shift
        if b < np.uint64(0x80):
            break
        shift += np.uint64(7)
    half = np.int64(value >> np.uint64(1))
    if value & np.uint64(1):
        return -half - np.int64(1), pos
    return half, pos


@kernel
def scan_counts(buf, start, end, max_len):
    """Validate the payload ``buf[start:end]`` without writing anything.

    Returns ``(status, position, needed_len, n_values)``: ``status`` is one of ``SCAN_*``,
    ``position`` the offset of the offending varint (``end`` when fine), ``needed_len`` one past the
    last index holding a non-zero count (0 when there is none) and ``n_values`` the varints read.
    No index may reach ``max_len``; a zero run may end exactly at it.
    """
    index = np.int64(0)
    needed = np.int64(0)
    n_values = np.int64(0)
    pos = start
    while pos < end:
        value, nxt = _read_zigzag(buf, pos, end)
        if nxt < 0:
            return SCAN_TRUNCATED, pos, needed, n_values
        n_values += 1
        if value < 0:
            # A run of -value zero counts; compare without negating (-INT64_MIN overflows).
            if value < index - max_len:
                return SCAN_INDEX_TOO_LARGE, pos, needed, n_values
            index -= value
        else:
            if index >= max_len:
                return SCAN_INDEX_TOO_LARGE, pos, needed, n_values
            if value > 0:
                needed = index + 1
            index += 1
        pos = nxt
    return SCAN_OK, end, needed, n_values


@kernel
def fill_counts(buf, start, end, out):
    """Write the counts of a payload that :func:`scan_counts` accepted into zeroed ``out``.

    Returns the number of non-zero counts written. Indices at or past ``out``'s length are skipped
    (they cannot hold a non-zero count when ``out`` is at least ``needed_len`` long).
    """
    n_out = out.shape[0]
    index = np.int64(0)
    written = 0
    pos = start
    while pos < end:
        value, nxt = _read_zigzag(buf, pos, end)
        if nxt < 0:
            break
        if value < 0:
            index -= value
        else:
            if value > 0 and index < n_out:
                out[index] = value
                written += 1
            index += 1
        pos = nxt
    return written


@kernel
def checked_total(counts):
    """Exact sum of non-negative int64 ``counts``: ``(total, overflowed)``.

    ``overflowed`` is True when the true sum exceeds ``2**63 - 1``; ``total`` is then the int64
    maximum (a saturated value, for callers that prefer saturation to an error).
    """
    limit = np.int64(0x7FFFFFFFFFFFFFFF)
    total = np.int64(0)
    for i in range(counts.shape[0]):
        c = np.int64(counts[i])
        if c > limit - total:
            return limit, True
        total += c
    return total, False


@kernel
def _put_zigzag(out, pos, z, dry):
    """Write the already ZigZag-mapped ``z`` (uint64) at ``pos``; return the next position.

    With ``dry`` nothing is written (the caller only measures).
    """
    for _ in range(8):
        if z < np.uint64(0x80):
            if not dry:
                out[pos] = np.uint8(z)
            return pos + 1
        if not dry:
            out[pos] = np.uint8((z & np.uint64(0x7F)) | np.uint64(0x80))
        pos += 1
        z >>= np.uint64(7)
    if not dry:
        out[pos] = np.uint8(z)
    return pos + 1


@kernel
def _zigzag_count(count):
    """ZigZag of a count ``>= 0``: ``2 * count``."""
    return np.uint64(count) << np.uint64(1)


@kernel
def _zigzag_run(run):
    """ZigZag of ``-run`` for a zero run ``>= 1``: ``2 * run - 1``."""
    return (np.uint64(run) << np.uint64(1)) - np.uint64(1)


@kernel
def encode_dense(counts, out, dry):
    """Encode dense non-negative ``counts`` as Java does; return the payload length in bytes.

    Call with ``dry=True`` (``out`` may be empty) to measure, then with an ``out`` of that size.
    """
    limit = counts.shape[0]
    while limit > 1 and counts[limit - 1] == 0:
        limit -= 1
    if limit == 0:
        limit = 1
    pos = 0
    i = 0
    while i < limit:
        count = np.int64(counts[i]) if i < counts.shape[0] else np.int64(0)
        i += 1
        if count == 0:
            run = 1
            while i < limit and counts[i] == 0:
                run += 1
                i += 1
            if run > 1:
                pos = _put_zigzag(out, pos, _zigzag_run(run), dry)
                continue
        pos = _put_zigzag(out, pos, _zigzag_count(count), dry)
    return pos


@kernel
def encode_sparse(indices, counts, out, dry):
    """Encode ``counts[k]`` at strictly increasing ``indices[k]``; zero counts are skipped.

    Produces exactly the bytes :func:`encode_dense` gives for the equivalent dense array. Returns
    the payload length; ``dry`` as in :func:`encode_dense`.
    """
    pos = 0
    next_index = np.int64(0)
    for k in range(indices.shape[0]):
        count = np.int64(counts[k])
        if count == 0:
            continue
        index = np.int64(indices[k])
        gap = index - next_index
        if gap == 1:
            pos = _put_zigzag(out, pos, np.uint64(0), dry)
        elif gap > 1:
            pos = _put_zigzag(out, pos, _zigzag_run(gap), dry)
        pos = _put_zigzag(out, pos, _zigzag_count(count), dry)
        next_index = index + 1
    if next_index == 0:
        pos = _put_zigzag(out, pos, np.uint64(0), dry)
    return pos
