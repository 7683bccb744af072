"""Kernels over Arrow string buffers: 64-bit keys for ids, dense codes, ISO-8601 timestamps.

An Arrow ``string`` / ``large_string`` / ``binary`` array is three buffers: a validity bitmap
(may be absent), ``n + 1`` offsets (int32 or int64) and the concatenated UTF-8 bytes. The kernels
here take those buffers as numpy views (no copy, no Python object per row) and read every value in
one pass: :func:`hash_strings` hashes ids, :func:`string_codes` numbers the few distinct values of
an endpoint or state column, :func:`parse_iso` parses timestamps.

The string hash (documented in ``docs/events.md`` so that it can be reproduced elsewhere) reads the
bytes eight at a time with unaligned little-endian loads:

* ``h = SEED ^ (len * P1)``;
* while more than 8 bytes remain: ``h = round(h, next 8 bytes)`` with xxHash64's round
  ``rotl(h + w * P2, 31) * P1``;
* the last 1..8 bytes make one more word ``w`` and ``h = round(h, w)``: the last 8 bytes
  (overlapping) when ``len >= 8``; the first and the last 4 bytes (``lo | hi << 32``) when
  ``4 <= len < 8``; ``b[0] << 16 | b[len // 2] << 8 | b[len - 1]`` when ``0 < len < 4``; 0 when
  empty;
* the result is splitmix64's finaliser of ``h``.

Integer ids go through splitmix64's finaliser alone, a bijection of 64-bit integers. Key ``0`` means
"absent" everywhere, so a hash or an integer that maps to 0 is replaced by :data:`ZERO_KEY`.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import kernel

__all__ = [
    "ISO_BAD",
    "ISO_NULL",
    "ISO_OK",
    "ZERO_KEY",
    "hash_ints",
    "hash_strings",
    "parse_iso",
    "string_codes",
]

_U = np.uint64
_P1 = _U(0x9E3779B185EBCA87)
_P2 = _U(0xC2B2AE3D27D4EB4F)
_SEED = _U(0x243F6A8885A308D3)
_S1 = _U(0xBF58476D1CE4E5B9)
_S2 = _U(0x94D049BB133111EB)
#: The key used for a value whose hash is 0 (0 is reserved for "absent").
ZERO_KEY = 0x5BD1E9955BD1E995
_ZERO = _U(ZERO_KEY)


def _unaligned_load(bits: int):
    """An intrinsic ``load(uint8_array, index) -> uint64`` reading ``bits`` bits at any address.

    numba has no unaligned wide load; assembling the word byte by byte is 4x slower (LLVM does not
    merge the byte loads), so emit the load directly. Little-endian, like every platform numba
    targets. The caller guarantees ``index + bits // 8 <= len(array)``.
    """

    @intrinsic  # type: ignore[misc]
    def load(typingctx, arr, idx):
        if not (isinstance(arr, types.Array) and arr.dtype == types.uint8):
            return None
        if not isinstance(idx, types.Integer):
            return None
        sig = types.uint64(arr, idx)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            pos = context.cast(builder, args[1], signature.args[1], types.intp)
            ptr = builder.bitcast(builder.gep(ary.data, [pos]), ir.IntType(bits).as_pointer())
            value = builder.load(ptr, align=1)
            if bits < 64:
                value = builder.zext(value, ir.IntType(64))
            return value

        return sig, codegen

    return load


_load64 = _unaligned_load(64)
_load32 = _unaligned_load(32)


@kernel
def _round(h, w):
    h = h + w * _P2
    h = (h << _U(31)) | (h >> _U(33))
    return h * _P1


@kernel
def _finalise(x):
    x ^= x >> _U(30)
    x *= _S1
    x ^= x >> _U(27)
    x *= _S2
    x ^= x >> _U(31)
    return x


@kernel
def _hash_range(data, start, end):
    """Hash of ``data[start:end]`` as uint64 (may be 0)."""
    n = end - start
    h = _SEED ^ (_U(n) * _P1)
    i = start
    while i + 8 < end:
        h = _round(h, _load64(data, i))
        i += 8
    if n >= 8:
        w = _load64(data, end - 8)
    elif n >= 4:
        w = _load32(data, start) | (_load32(data, end - 4) << _U(32))
    elif n > 0:
        w = (_U(data[start]) << _U(16)) | (_U(data[start + (n >> 1)]) << _U(8)) | _U(data[end - 1])
    else:
        w = _U(0)
    return _finalise(_round(h, w))


@kernel
def hash_strings(offsets, data, valid, bit_offset, out):
    """Key of every string of an Arrow string/binary array into ``out`` (int64).

    ``offsets`` are the ``n + 1`` offsets of the array (already shifted by the array's offset),
    ``data`` its bytes as uint8, ``valid`` its validity bitmap (empty when there is none) and
    ``bit_offset`` the array's offset into that bitmap. Nulls get key 0; a hash of 0 becomes
    :data:`ZERO_KEY`.
    """
    n = offsets.shape[0] - 1
    check = valid.shape[0] > 0
    for k in range(n):
        if check:
            b = bit_offset + k
            if not (valid[b >> 3] >> (b & 7)) & 1:
                out[k] = 0
                continue
        h = _hash_range(data, offsets[k], offsets[k + 1])
        if h == _U(0):
            h = _ZERO
        out[k] = np.int64(h)
    return out


@kernel
def hash_ints(values, out):
    """Key of every integer of ``values`` into ``out`` (int64): splitmix64's finaliser, a
    bijection, with 0 replaced by :data:`ZERO_KEY`."""
    for k in range(values.shape[0]):
        h = _finalise(_U(np.int64(values[k])))
        if h == _U(0):
            h = _ZERO
        out[k] = np.int64(h)
    return out


@kernel
def _insert(table_keys, table_codes, h):
    """Slot of ``h`` in an open-addressing table (its slot if present, else the empty one)."""
    mask = table_keys.shape[0] - 1
    j = np.int64(h & _U(mask))
    while table_codes[j] >= 0 and table_keys[j] != h:
        j = (j + 1) & mask
    return j


@kernel
def string_codes(offsets, data, valid, bit_offset):
    """Dense codes of the distinct strings of an Arrow string array, by hash.

    Same buffer arguments as :func:`hash_strings`. Returns ``(codes, first)``: ``codes[k]`` (int32)
    numbers the distinct values in order of first appearance, -1 for null; ``first[c]`` is the row
    where code ``c`` first appears. Two strings with the same 64-bit hash share a code. Meant for
    columns with few distinct values (states, endpoints): the table grows as needed.
    """
    n = offsets.shape[0] - 1
    check = valid.shape[0] > 0
    codes = np.empty(n, dtype=np.int32)
    cap = 64
    table_keys = np.zeros(cap, dtype=np.uint64)
    table_codes = np.full(cap, -1, dtype=np.int32)
    first = np.empty(16, dtype=np.int64)
    count = 0
    for k in range(n):
        if check:
            b = bit_offset + k
            if not (valid[b >> 3] >> (b & 7)) & 1:
                codes[k] = -1
                continue
        h = _hash_range(data, offsets[k], offsets[k + 1])
        j = _insert(table_keys, table_codes, h)
        if table_codes[j] < 0:
            if count == first.shape[0]:
                grown = np.empty(2 * count, dtype=np.int64)
                grown[:count] = first
                first = grown
            first[count] = k
            table_keys[j] = h
            table_codes[j] = count
            count += 1
            if 2 * count > cap:
                old_keys = table_keys
                old_codes = table_codes
                cap *= 4
                table_keys = np.zeros(cap, dtype=np.uint64)
                table_codes = np.full(cap, -1, dtype=np.int32)
                for s in range(old_keys.shape[0]):
                    if old_codes[s] >= 0:
                        t = _insert(table_keys, table_codes, old_keys[s])
                        table_keys[t] = old_keys[s]
                        table_codes[t] = old_codes[s]
            codes[k] = count - 1
        else:
            codes[k] = table_codes[j]
    return codes, first[:count].copy()


# --------------------------------------------------------------------------------------------------
# ISO-8601 timestamps, parsed from the same string buffers
# --------------------------------------------------------------------------------------------------

#: ``status`` values written by :func:`parse_iso`.
ISO_OK, ISO_NULL, ISO_BAD = 0, 1, 2


@kernel
def _digits(data, pos, width):
    """Value of ``width`` ASCII digits at ``pos``, or -1 if one is not a digit."""
    value = np.int64(0)
    for i in range(width):
        c = np.int64(data[pos + i]) - 48
        if c < 0 or c > 9:
            return np.int64(-1)
        value = value * 10 + c
    return value


@kernel
def _is_space(c):
    return c == 32 or (9 <= c <= 13)


@kernel
def _iso_one(data, s, e):
    """Microseconds of ``data[s:e]`` as ISO-8601, and whether it parsed.

    Grammar: ``YYYY-MM-DD`` optionally followed by ``T``/``t``/space and ``HH[:MM[:SS[(.|,)f+]]]``
    and an optional offset ``Z``/``z``/``±HH``/``±HHMM``/``±HH:MM``. Fractions beyond the
    microsecond are floored; naive times are UTC.
    """
    bad = (np.int64(0), False)
    if e - s < 10 or data[s + 4] != 45 or data[s + 7] != 45:  # '-'
        return bad
    year = _digits(data, s, 4)
    month = _digits(data, s + 5, 2)
    day = _digits(data, s + 8, 2)
    if year < 0 or month < 1 or month > 12 or day < 1:
        return bad
    leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
    if month == 2:
        last_day = 29 if leap else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        last_day = 30
    else:
        last_day = 31
    if day > last_day:
        return bad
    hour = np.int64(0)
    minute = np.int64(0)
    second = np.int64(0)
    micros = np.int64(0)
    offset = np.int64(0)
    p = s + 10
    if p < e:
        c = data[p]
        if c != 84 and c != 116 and c != 32:  # 'T', 't', ' '
            return bad
        p += 1
        if e - p < 2:
            return bad
        hour = _digits(data, p, 2)
        if hour < 0 or hour > 23:
            return bad
        p += 2
        if p < e and data[p] == 58:  # ':'
            if e - p < 3:
                return bad
            minute = _digits(data, p + 1, 2)
            if minute < 0 or minute > 59:
                return bad
            p += 3
            if p < e and data[p] == 58:
                if e - p < 3:
                    return bad
                second = _digits(data, p + 1, 2)
                if second < 0 or second > 59:
                    return bad
                p += 3
                if p < e and (data[p] == 46 or data[p] == 44):  # '.' or ','
                    p += 1
                    n_digits = 0
                    while p < e and 48 <= data[p] <= 57:
                        if n_digits < 6:
                            micros = micros * 10 + (np.int64(data[p]) - 48)
                        n_digits += 1
                        p += 1
                    if n_digits == 0:
                        return bad
                    for _ in range(n_digits, 6):
                        micros *= 10
        if p < e:
            c = data[p]
            rest = e - p - 1
            if (c == 90 or c == 122) and rest == 0:  # 'Z', 'z'
                pass
            elif c == 43 or c == 45:  # '+', '-'
                zone_h = _digits(data, p + 1, 2) if rest >= 2 else np.int64(-1)
                if rest == 2:
                    zone_m = np.int64(0)
                elif rest == 4:
                    zone_m = _digits(data, p + 3, 2)
                elif rest == 5 and data[p + 3] == 58:
                    zone_m = _digits(data, p + 4, 2)
                else:
                    return bad
                if zone_h < 0 or zone_h > 23 or zone_m < 0 or zone_m > 59:
                    return bad
                offset = (zone_h * 60 + zone_m) * 60_000_000
                if c == 45:
                    offset = -offset
            else:
                return bad
    # days from civil (proleptic Gregorian), H. Hinnant's algorithm
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
    return seconds * 1_000_000 + micros - offset, True


@kernel
def parse_iso(offsets, data, valid, bit_offset, out, status):
    """ISO-8601 strings of an Arrow string array -> int64 microseconds since the epoch (UTC).

    Same buffer arguments as :func:`hash_strings`. Writes ``out`` and ``status`` (``ISO_OK``,
    ``ISO_NULL`` or ``ISO_BAD``) per row; surrounding whitespace is ignored.
    """
    n = offsets.shape[0] - 1
    check = valid.shape[0] > 0
    for k in range(n):
        out[k] = 0
        if check:
            b = bit_offset + k
            if not (valid[b >> 3] >> (b & 7)) & 1:
                status[k] = ISO_NULL
                continue
        s = np.int64(offsets[k])
        e = np.int64(offsets[k + 1])
        while s < e and _is_space(data[s]):
            s += 1
        while e > s and _is_space(data[e - 1]):
            e -= 1
        value, ok = _iso_one(data, s, e)
        if ok:
            out[k] = value
            status[k] = ISO_OK
        else:
            status[k] = ISO_BAD
