"""HdrHistogram V2 encoding: byte-compatible with the Java and C writers, lenient as their readers.

Layout (all integers big-endian)::

    compressed:    cookie 0x1c849314 | int32 compressed_len | zlib(uncompressed)
    uncompressed:  cookie 0x1c849313 | int32 payload_len | int32 normalizing_index_offset
                   | int32 significant_figures | int64 lowest | int64 highest
                   | float64 conversion_ratio | payload
    payload:       ZigZag LEB128-64b9B varints; v >= 0 is the count of the next index,
                   v < 0 skips -v indices (a run of zero counts)

The ``HISTFAAA...`` text found in ``.hlog`` files and in HdrHistogram tools is the base64 of the
compressed form.

The encoder writes what Java's ``encodeIntoCompressedByteBuffer`` writes (zlib level 6 by default,
as Java's ``Deflater`` default). The decoder accepts what the Java, C, Go and Python writers
produce, including their known quirks; see ``docs/hdr-encoding.md`` for the policies and the errors.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._kernels import varint
from .geometry import Geometry

__all__ = [
    "COMPRESSED_COOKIE",
    "ENCODING_COOKIE",
    "DecodedHistogram",
    "decode",
    "encode_counts",
    "encode_counts_base64",
    "encode_sparse",
    "max_counts_len",
]

ENCODING_COOKIE = 0x1C849313
"""Cookie of the uncompressed V2 encoding (V2 base ``0x1c849303`` with word size 8 in bits 4-7)."""
COMPRESSED_COOKIE = 0x1C849314
"""Cookie of the compressed V2 encoding (V2 base ``0x1c849304`` with word size 8 in bits 4-7)."""

_V2_BASE = 0x1C849303
_V2_COMPRESSED_BASE = 0x1C849304
_OLDER_BASES = {
    0x1C849301: "V1",
    0x1C849302: "V1 compressed",
    0x1C849308: "V0",
    0x1C849309: "V0 compressed",
}
_HEADER = struct.Struct(">iiiiqqd")
_HEADER_SIZE = _HEADER.size  # 40
_OUTER = struct.Struct(">ii")
_OUTER_SIZE = _OUTER.size  # 8
_INT64_MAX = 2**63 - 1
_INT64 = np.dtype(np.int64)
_MAX_VARINT_BYTES = 9
_TOTAL_OVERFLOW = "the total count overflows int64: the counts sum to more than 2**63 - 1"


@dataclass(frozen=True, eq=False)
class DecodedHistogram:
    """The content of one V2-encoded histogram.

    Parameters
    ----------
    geometry:
        Bucket layout from the header. When a header's ``highest`` is below ``2 * lowest`` (only
        possible from an auto-resizing writer), ``highest`` is raised to ``2 * lowest``.
    counts:
        int64 counts in logical index order, of length ``max(geometry.counts_len, last + 1)`` where
        ``last`` is the last index with a non-zero count: counts recorded above the header's
        ``highest`` (auto-resizing writers) are kept, never dropped.
    normalizing_index_offset:
        The header field, as metadata only. Java writes counts in logical order whatever the offset
        (the offset only describes its internal array rotation), so the counts are read as written.
    conversion_ratio:
        The header's integer-to-double conversion ratio, as metadata only: counts and values are
        never scaled by it.

    Examples
    --------
    >>> h = decode("HISTFAAAAB542pNpmSzMwMDAxAABzFCaEUoz2X+AMIKZAEARAtM=")
    >>> h.geometry, h.total_count, int(h.counts.nonzero()[0][0])
    (Geometry(lowest=1, highest=2, significant_figures=3), 1, 42)
    """

    geometry: Geometry
    counts: npt.NDArray[np.int64]
    normalizing_index_offset: int = 0
    conversion_ratio: float = 1.0

    @property
    def total_count(self) -> int:
        """Sum of the counts.

        Raises
        ------
        ValueError
            When the sum exceeds ``2**63 - 1`` (each count fits in int64, their sum need not).
        """
        total, overflowed = varint.checked_total(self.counts)
        if overflowed:
            raise ValueError(_TOTAL_OVERFLOW)
        return int(total)

    def __repr__(self) -> str:
        nonzero = int(np.count_nonzero(self.counts))
        return (
            f"DecodedHistogram(geometry={self.geometry!r}, counts=<{self.counts.shape[0]} counts, "
            f"{nonzero} non-zero>, normalizing_index_offset={self.normalizing_index_offset}, "
            f"conversion_ratio={self.conversion_ratio!r})"
        )


def max_counts_len(geometry: Geometry) -> int:
    """Length of the counts array that covers every int64 value with ``geometry``'s buckets.

    No index of a valid encoding can reach it; decoders refuse anything beyond it.

    Examples
    --------
    >>> max_counts_len(Geometry(1, 1000, 3))
    55296
    """
    return _max_counts_len(geometry.lowest, geometry.significant_figures)


@lru_cache(maxsize=256)
def _max_counts_len(lowest: int, significant_figures: int) -> int:
    # Cached: the full-range geometry walks every bucket, and each encode and decode needs the
    # limit (the histograms of a program share a handful of layouts).
    return Geometry(lowest, _INT64_MAX, significant_figures).counts_len


# --------------------------------------------------------------------------------------- encoding


def _check_level(level: int) -> None:
    if isinstance(level, bool) or not isinstance(level, int) or not -1 <= level <= 9:
        raise ValueError(f"level must be a zlib compression level from -1 to 9, got {level!r}")


def _as_int64(name: str, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    if (
        isinstance(values, np.ndarray)
        and values.dtype is _INT64
        and values.ndim == 1
        and values.flags.c_contiguous
    ):
        return values  # the common case, a histogram's own counts: used as is
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got {int(array.max())}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _frame(geometry: Geometry, out: npt.NDArray[np.uint8], size: int, level: int) -> bytes:
    """Compress the header, written into the first 40 bytes of ``out``, and the payload after it."""
    buffer = out.data
    _HEADER.pack_into(
        buffer,
        0,
        ENCODING_COOKIE,
        size,
        0,
        geometry.significant_figures,
        geometry.lowest,
        geometry.highest,
        1.0,
    )
    compressed = zlib.compress(buffer[: _HEADER_SIZE + size], level)
    return _OUTER.pack(COMPRESSED_COOKIE, len(compressed)) + compressed


def encode_counts(geometry: Geometry, counts: npt.ArrayLike, *, level: int = 6) -> bytes:
    """Encode dense counts as raw V2 compressed bytes, exactly as Java does.

    Parameters
    ----------
    geometry:
        Bucket layout; written to the header (normalizing offset 0, conversion ratio 1.0).
    counts:
        Non-negative integer counts by index. Any length: counts past the last non-zero one are
        not written, and counts past ``geometry.counts_len`` (values above ``highest``) are kept
        as long as the index is addressable in int64 values.
    level:
        zlib compression level, -1 to 9. Java's default is 6 (``78 9c``); its log writers use 9.

    Returns
    -------
    bytes
        Cookie ``0x1c849314``, compressed length, zlib stream. An empty histogram is written with a
        one-byte payload (a single zero count), as Java writes it.

    Raises
    ------
    ValueError
        Negative counts, counts that are not one-dimensional, a non-zero count at an index no int64
        value maps to, or a bad ``level``.
    TypeError
        Counts that are not integers.

    Examples
    --------
    >>> g = Geometry(1, 2, 3)
    >>> counts = np.zeros(g.counts_len, dtype=np.int64)
    >>> counts[42] = 1
    >>> encode_counts_base64(g, counts)
    'HISTFAAAAB54nJNpmSzMwMDAxAABzFCaEUoz2X+AMIKZAEARAtM='
    """
    _check_level(level)
    array = _as_int64("counts", counts)
    limit = max_counts_len(geometry)
    status, index, out, size = varint.encode_dense(array, limit, _HEADER_SIZE)
    if status == varint.NEGATIVE_COUNT:
        raise ValueError(f"counts must be >= 0, got {int(array[index])} at index {index}")
    if status == varint.INDEX_TOO_LARGE:
        raise ValueError(
            f"counts has a non-zero count at index {index}, beyond the int64 value "
            f"range of {geometry!r} (at most {limit} indices)"
        )
    return _frame(geometry, out, size, level)


def encode_counts_base64(geometry: Geometry, counts: npt.ArrayLike, *, level: int = 6) -> str:
    """:func:`encode_counts` as the ``HISTFAAA...`` base64 text of ``.hlog`` files.

    Examples
    --------
    >>> g = Geometry(20, 1000, 3)
    >>> encode_counts_base64(g, np.zeros(g.counts_len, dtype=np.int64))[:8]
    'HISTFAAA'
    """
    raw = encode_counts(geometry, counts, level=level)
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def encode_sparse(
    geometry: Geometry,
    indices: npt.ArrayLike,
    counts: npt.ArrayLike,
    *,
    level: int = 6,
) -> bytes:
    """Encode ``counts[k]`` at ``indices[k]`` without building the dense array.

    Gives the same bytes as :func:`encode_counts` on the equivalent dense array.

    Parameters
    ----------
    geometry:
        Bucket layout, as in :func:`encode_counts`.
    indices:
        Strictly increasing counts indices (int64), each below :func:`max_counts_len`.
    counts:
        Counts (>= 0) at those indices; zero counts are allowed and skipped.
    level:
        zlib compression level, -1 to 9.

    Raises
    ------
    ValueError
        Mismatched lengths, unsorted or repeated indices, negative indices or counts, indices that
        no int64 value maps to.
    TypeError
        Indices or counts that are not integers.

    Examples
    --------
    >>> g = Geometry(1, 2, 3)
    >>> dense = np.zeros(g.counts_len, dtype=np.int64)
    >>> dense[42] = 1
    >>> encode_sparse(g, [42], [1]) == encode_counts(g, dense)
    True
    """
    _check_level(level)
    idx = _as_int64("indices", indices)
    cnt = _as_int64("counts", counts)
    if idx.shape != cnt.shape:
        raise ValueError(
            f"indices and counts must have the same length, got {idx.shape[0]} and {cnt.shape[0]}"
        )
    limit = max_counts_len(geometry)
    status, k, out, size = varint.encode_sparse(idx, cnt, limit, _HEADER_SIZE)
    if status == varint.NEGATIVE_INDEX:
        raise ValueError(f"indices must be >= 0, got {int(idx[k])} at position {k}")
    if status == varint.UNSORTED_INDEX:
        raise ValueError(
            f"indices must be strictly increasing: {int(idx[k])} after {int(idx[k - 1])} at position {k}"
        )
    if status == varint.NEGATIVE_COUNT:
        raise ValueError(f"counts must be >= 0, got {int(cnt[k])} at position {k}")
    if status == varint.INDEX_TOO_LARGE:
        raise ValueError(
            f"index {int(idx[k])} at position {k} is beyond the int64 value range of {geometry!r} "
            f"(at most {limit} indices)"
        )
    return _frame(geometry, out, size, level)


# --------------------------------------------------------------------------------------- decoding


class _Header(NamedTuple):
    payload_len: int
    normalizing_index_offset: int
    conversion_ratio: float
    geometry: Geometry


def _to_binary(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        text: bytes | str = data.strip()
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        text = raw.strip()
        if not text.startswith(b"HIST"):
            return raw
    else:
        raise TypeError(f"data must be bytes, bytearray, memoryview or str, got {type(data).__name__}")
    try:
        # base64.b64decode(text, validate=True) without its wrapper
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 text for an HdrHistogram encoding: {exc}") from None


@lru_cache(maxsize=256)
def _header_geometry(lowest: int, highest: int, significant_figures: int) -> Geometry:
    # Cached: the encodings a program reads share a handful of layouts (errors are not cached).
    return Geometry(lowest, highest, significant_figures)


def _parse_header(data: bytes) -> _Header:
    """Check the cookie and the fields of the 40-byte header at the start of ``data``."""
    cookie, payload_len, offset, sig, lowest, highest, ratio = _HEADER.unpack_from(data)
    _check_cookie(cookie & 0xFFFFFFFF, _V2_BASE, "V2 encoding")
    if payload_len < 0:
        raise ValueError(f"invalid V2 header: negative payload length {payload_len}")
    if not 0 <= sig <= 5:
        raise ValueError(f"invalid V2 header: significant figures must be 0 to 5, got {sig}")
    if lowest < 1:
        raise ValueError(f"invalid V2 header: lowest trackable value must be >= 1, got {lowest}")
    if highest < 1:
        raise ValueError(f"invalid V2 header: highest trackable value must be positive, got {highest}")
    if lowest > _INT64_MAX // 2:
        raise ValueError(f"invalid V2 header: lowest trackable value {lowest} is too large")
    try:
        geometry = _header_geometry(lowest, max(highest, 2 * lowest), sig)
    except ValueError as exc:
        raise ValueError(f"invalid V2 header: {exc}") from None
    return _Header(payload_len, offset, ratio, geometry)


def _check_cookie(cookie: int, base: int, what: str) -> None:
    if cookie & ~0xF0 == base:
        return
    older = _OLDER_BASES.get(cookie & ~0xF0)
    if older is not None:
        raise ValueError(f"unsupported {older} HdrHistogram encoding (cookie {cookie:#010x})")
    raise ValueError(f"not an HdrHistogram {what}: unknown cookie {cookie:#010x}")


def _inflate(data: bytes) -> tuple[_Header, bytes]:
    """Split compressed bytes into the header and the payload, inflating no more than needed."""
    if len(data) < _OUTER_SIZE:
        raise ValueError(f"compressed encoding too short: {len(data)} bytes, expected at least 8")
    _, length = _OUTER.unpack_from(data)
    available = len(data) - _OUTER_SIZE
    if length < 0 or length > available:
        raise ValueError(f"compressed length {length} does not fit the {available} bytes after the header")
    if length < available:
        raise ValueError(f"{available - length} unexpected bytes after the {length}-byte compressed content")
    inflater = zlib.decompressobj()
    try:
        head = inflater.decompress(memoryview(data)[_OUTER_SIZE:], _HEADER_SIZE)
        if len(head) < _HEADER_SIZE:
            raise ValueError(
                f"inflated content too short: {len(head)} bytes, expected a {_HEADER_SIZE}-byte header"
            )
        header = _parse_header(head)
        # Every index takes at least one varint of at most 9 bytes, so a sane payload is bounded.
        cap = _MAX_VARINT_BYTES * max_counts_len(header.geometry)
        payload = inflater.decompress(inflater.unconsumed_tail, cap + 1)
    except zlib.error as exc:
        raise ValueError(f"corrupt zlib stream in compressed encoding: {exc}") from None
    if len(payload) > cap:
        raise ValueError(f"inflated payload exceeds {cap} bytes, more than any histogram needs")
    if not inflater.eof:
        raise ValueError("truncated zlib stream in compressed encoding")
    if inflater.unused_data:
        raise ValueError(
            f"{len(inflater.unused_data)} unexpected bytes after the zlib stream within the compressed length"
        )
    return header, payload


class _Decoded(NamedTuple):
    header: _Header
    counts: npt.NDArray[np.int64]
    total: int
    """Sum of the counts, saturated at ``2**63 - 1`` when it overflows."""
    overflowed: bool


def _decode_counts(header: _Header, buf: bytes, start: int) -> _Decoded:
    geometry = header.geometry
    # Legacy C writers (before HdrHistogram_c 65e0b90) counted the 40-byte header in payload_len:
    # a length past the end of the buffer is read up to the end (zlib's checksum, when compressed,
    # already vouches for the bytes).
    end = min(start + header.payload_len, len(buf))
    limit = max_counts_len(geometry)
    array = np.frombuffer(buf, dtype=np.uint8)
    counts = np.zeros(geometry.counts_len, dtype=np.int64)
    status, position, needed, total, overflowed = varint.decode_counts(array, start, end, counts, limit)
    if status == varint.TRUNCATED:
        raise ValueError(f"truncated varint at payload byte {position - start} of {end - start}")
    if status == varint.INDEX_TOO_LARGE:
        raise ValueError(
            f"payload byte {position - start}: counts index beyond {limit}, the most any int64 value "
            f"needs with {geometry!r}"
        )
    if needed > counts.shape[0]:
        # Counts above the header's highest (auto-resizing writers): the walk accepted the payload
        # and measured the array (needed <= limit); walk it again into one of that length.
        counts = np.zeros(needed, dtype=np.int64)
        varint.decode_counts(array, start, end, counts, limit)
    return _Decoded(header, counts, total, overflowed)


def _decode(data: bytes | bytearray | memoryview | str) -> _Decoded:
    """:func:`decode` without the wrapping, and with the total count of the same walk.

    For :meth:`HdrHistogram.decode <jobmetrics.HdrHistogram.decode>`, which needs both.
    """
    binary = _to_binary(data)
    if len(binary) < 4:
        raise ValueError(
            f"encoded histogram too short: {len(binary)} bytes, expected at least a 4-byte cookie"
        )
    cookie = int.from_bytes(binary[:4], "big")
    if cookie & ~0xF0 == _V2_COMPRESSED_BASE:
        header, payload = _inflate(binary)
        return _decode_counts(header, payload, 0)
    _check_cookie(cookie, _V2_BASE, "V2 encoding")
    if len(binary) < _HEADER_SIZE:
        raise ValueError(
            f"uncompressed encoding too short: {len(binary)} bytes, expected a {_HEADER_SIZE}-byte header"
        )
    return _decode_counts(_parse_header(binary), binary, _HEADER_SIZE)


def decode(data: bytes | bytearray | memoryview | str) -> DecodedHistogram:
    """Decode one V2-encoded HdrHistogram.

    Parameters
    ----------
    data:
        Any of: the ``HISTFAAA...`` base64 text (``str``, or bytes starting with ``b"HIST"``;
        surrounding whitespace ignored), the raw compressed bytes (cookie ``0x1c849314``) or the
        uncompressed V2 encoding (cookie ``0x1c849313``). As in Java, bits 4-7 of a cookie (the
        word size) are not checked.

    Returns
    -------
    DecodedHistogram
        Geometry, counts and the two metadata header fields.

    Raises
    ------
    ValueError
        Anything malformed: bad base64, unknown or older (V0/V1) cookies, bad lengths, a corrupt or
        truncated zlib stream, an invalid header, a truncated varint, an index or zero run past what
        int64 values can address. Never more memory than the header geometry allows.
    TypeError
        ``data`` of another type.

    Examples
    --------
    >>> h = decode("HISTFAAAACB4nJNpmSzMwMDAzAABMJoRQnEw2H+AsP7LMwEARZgDpQ==")
    >>> h.geometry.counts_len, h.total_count, int(np.flatnonzero(h.counts)[0])
    (3072, 1, 2048)
    """
    header, counts, _, _ = _decode(data)
    return DecodedHistogram(
        geometry=header.geometry,
        counts=counts,
        normalizing_index_offset=header.normalizing_index_offset,
        conversion_ratio=header.conversion_ratio,
    )
