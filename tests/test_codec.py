"""HdrHistogram V2 codec: round trips, encoder equivalence, interop with HdrHistogram_py, errors."""

from __future__ import annotations

import base64
import doctest
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import jobmetrics.codec as codec
import naive_hdr as naive
from jobmetrics import HdrHistogram
from jobmetrics._kernels import varint
from jobmetrics.codec import (
    COMPRESSED_COOKIE,
    ENCODING_COOKIE,
    DecodedHistogram,
    decode,
    encode_counts,
    encode_counts_base64,
    encode_sparse,
    max_counts_len,
)
from jobmetrics.geometry import Geometry

hdrh_histogram = pytest.importorskip("hdrh.histogram")
PyHdrHistogram = hdrh_histogram.HdrHistogram

INT64_MAX = 2**63 - 1
SETTINGS = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings(
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DECODE_TIME_LIMIT = 2.0  # seconds; generous, a decode of garbage takes microseconds


# ------------------------------------------------------------------------------ helpers


def header(
    *,
    payload_len: int,
    cookie: int = ENCODING_COOKIE,
    offset: int = 0,
    sig: int = 3,
    lowest: int = 1,
    highest: int = 1000,
    ratio: float = 1.0,
) -> bytes:
    return struct.pack(">Iiiiqqd", cookie, payload_len, offset, sig, lowest, highest, ratio)


def compressed(inflated: bytes, *, cookie: int = COMPRESSED_COOKIE, level: int = 6) -> bytes:
    body = zlib.compress(inflated, level)
    return struct.pack(">Ii", cookie, len(body)) + body


def blob(payload: bytes, **fields: object) -> bytes:
    """Compressed bytes holding ``payload`` with a correct payload_len (unless given)."""
    fields.setdefault("payload_len", len(payload))
    return compressed(header(**fields) + payload)  # type: ignore[arg-type]


def inflated(raw: bytes) -> bytes:
    return zlib.decompress(raw[8:])


def mags(g: Geometry) -> tuple[int, int]:
    return g.unit_magnitude, g.half_magnitude


def decode_or_value_error(data: bytes | str) -> DecodedHistogram | None:
    start = time.perf_counter()
    try:
        result = decode(data)
    except ValueError:
        result = None
    assert time.perf_counter() - start < DECODE_TIME_LIMIT
    if result is not None:
        assert result.counts.dtype == np.int64
        assert len(result.counts) <= max_counts_len(result.geometry)
        assert len(result.counts) >= result.geometry.counts_len
        # HdrHistogram.decode takes the total from the decoding walk: the same as summing
        exact = sum(int(c) for c in result.counts[result.counts != 0])
        if exact > INT64_MAX:
            with pytest.raises(ValueError, match="total count overflows int64"):
                HdrHistogram.decode(data)
        else:
            h = HdrHistogram.decode(data)
            assert h.total_count == exact
            np.testing.assert_array_equal(h.counts[: len(result.counts)], result.counts)
    else:
        with pytest.raises(ValueError):
            HdrHistogram.decode(data)
    return result


@st.composite
def geometries(draw: st.DrawFn, *, min_sig: int = 0, max_counts: int = 400_000) -> Geometry:
    sig = draw(st.integers(min_sig, 5))
    lowest = draw(
        st.one_of(
            st.just(1),
            st.integers(1, 2**12),
            st.integers(0, 30).map(lambda k: 2**k),
            st.integers(2, 2**30),
        )
    )
    exponent = draw(st.integers(lowest.bit_length() + 1, 62))
    highest = draw(st.integers(max(2 * lowest, 2 ** (exponent - 1)), 2**exponent - 1))
    g = Geometry(lowest, highest, sig)
    assume(g.counts_len <= max_counts)
    return g


@st.composite
def histograms(
    draw: st.DrawFn, *, min_sig: int = 0, max_count: int = 2**62, max_counts: int = 400_000
) -> tuple[Geometry, np.ndarray]:
    """A geometry and dense counts of random and bucket-edge values, counts up to ``max_count``."""
    g = draw(geometries(min_sig=min_sig, max_counts=max_counts))
    um, hm = mags(g)
    last_value = naive.highest_equivalent(g.counts_len - 1, um, hm)
    index = st.integers(0, g.counts_len - 1)
    value = st.one_of(
        st.integers(0, g.highest),
        index.map(lambda i: naive.value_from_index(i, um, hm)),
        index.map(lambda i: min(naive.highest_equivalent(i, um, hm), last_value)),
        st.sampled_from([0, g.lowest, g.highest, last_value]),
    )
    count = st.one_of(st.integers(1, 3), st.integers(1, max_count))
    entries = draw(st.dictionaries(value, count, max_size=40))
    counts = np.zeros(g.counts_len, dtype=np.int64)
    for v, c in entries.items():
        counts[naive.counts_index(v, um, hm)] = c  # assignment: counts stay <= max_count
    return g, counts


# ------------------------------------------------------------------------------ round trips


@SETTINGS
@given(histograms())
def test_round_trip_and_encoders_agree(case: tuple[Geometry, np.ndarray]) -> None:
    g, counts = case
    raw = encode_counts(g, counts)
    nonzero = np.flatnonzero(counts)
    assert encode_sparse(g, nonzero, counts[nonzero]) == raw
    assert base64.b64decode(encode_counts_base64(g, counts)) == raw

    inner = inflated(raw)
    assert inner[:40] == header(
        payload_len=len(inner) - 40,
        sig=g.significant_figures,
        lowest=g.lowest,
        highest=g.highest,
    )
    if nonzero.size == 0 or nonzero[-1] < 50_000:
        assert inner[40:] == naive.encode_payload(counts)

    for data in (raw, encode_counts_base64(g, counts), inner, bytearray(raw), memoryview(raw)):
        h = decode(data)
        assert h.geometry == g
        assert h.normalizing_index_offset == 0
        assert h.conversion_ratio == 1.0
        np.testing.assert_array_equal(h.counts, counts)


@SETTINGS
@given(histograms(max_count=2**40), st.sampled_from([-1, 0, 1, 9]))
def test_compression_levels_round_trip(case: tuple[Geometry, np.ndarray], level: int) -> None:
    g, counts = case
    raw = encode_counts(g, counts, level=level)
    assert inflated(raw) == inflated(encode_counts(g, counts))
    np.testing.assert_array_equal(decode(raw).counts, counts)


@SETTINGS
@given(
    geometries(max_counts=50_000),
    st.dictionaries(st.integers(0, 200_000), st.integers(0, 2**62), max_size=30),
)
def test_sparse_equals_dense_beyond_the_geometry(g: Geometry, entries: dict[int, int]) -> None:
    limit = max_counts_len(g)
    entries = {i: c for i, c in entries.items() if i < limit}
    indices = np.array(sorted(entries), dtype=np.int64)
    counts = np.array([entries[i] for i in sorted(entries)], dtype=np.int64)
    dense = np.zeros(max(g.counts_len, int(indices.max(initial=-1)) + 1), dtype=np.int64)
    dense[indices] = counts
    raw = encode_counts(g, dense)
    assert encode_sparse(g, indices, counts) == raw  # zero counts in the sparse input are skipped
    h = decode(raw)
    nonzero = np.flatnonzero(dense)
    assert len(h.counts) == max(g.counts_len, int(nonzero.max(initial=-1)) + 1)
    np.testing.assert_array_equal(h.counts[: len(dense)], dense[: len(h.counts)])
    assert not h.counts[len(dense) :].any()


@SETTINGS
@given(histograms(max_counts=30_000, max_count=2**62))
def test_decoder_matches_naive_payload_decoder(case: tuple[Geometry, np.ndarray]) -> None:
    g, counts = case
    payload = inflated(encode_counts(g, counts))[40:]
    h = decode(blob(payload, sig=g.significant_figures, lowest=g.lowest, highest=g.highest))
    expected = naive.decode_payload(payload)
    got = {int(i): int(h.counts[i]) for i in np.flatnonzero(h.counts)}
    assert got == expected
    total = sum(expected.values())
    if total > INT64_MAX:
        with pytest.raises(ValueError, match="total count overflows int64"):
            HdrHistogram.decode(encode_counts(g, counts))
    else:
        assert HdrHistogram.decode(encode_counts(g, counts)).total_count == total


def test_empty_histogram_writes_one_zero_like_java() -> None:
    g = Geometry(1, 3_600_000_000, 3)
    for raw in (
        encode_counts(g, np.zeros(g.counts_len, dtype=np.int64)),
        encode_counts(g, np.zeros(0, dtype=np.int64)),
        encode_sparse(g, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)),
        encode_sparse(g, [5, 9], [0, 0]),
    ):
        inner = inflated(raw)
        assert struct.unpack_from(">i", inner, 4)[0] == 1
        assert inner[40:] == b"\x00"
        assert decode(raw).total_count == 0


def test_payload_of_zero_or_one_byte_is_empty() -> None:
    for payload in (b"", b"\x00"):
        h = decode(blob(payload))
        assert h.total_count == 0
        assert len(h.counts) == Geometry(1, 1000, 3).counts_len
    # a one-byte payload can still hold a count at index 0
    assert decode(blob(b"\x02")).counts[0] == 1


def test_lone_zero_and_runs_follow_java() -> None:
    g = Geometry(1, 1000, 2)
    counts = np.zeros(g.counts_len, dtype=np.int64)
    counts[[1, 3, 7]] = [5, 1, 2**62]
    payload = inflated(encode_counts(g, counts))[40:]
    # 0 at index 0 -> 00; 5 -> 0a; lone zero -> 00; 1 -> 02; run of 3 -> zigzag(-3) = 05
    assert payload[:5] == bytes([0x00, 0x0A, 0x00, 0x02, 0x05])
    assert payload[5:] == bytes([0x80] * 8 + [0x80])  # 2**62 -> zigzag 2**63, nine bytes


def test_huge_counts_and_int64_max() -> None:
    g = Geometry(1, 10_000, 3)
    counts = np.zeros(g.counts_len, dtype=np.int64)
    counts[0] = INT64_MAX
    counts[1] = 1
    h = decode(encode_counts(g, counts))
    assert int(h.counts[0]) == INT64_MAX
    with pytest.raises(ValueError, match="total count overflows int64"):
        _ = h.total_count
    with pytest.raises(ValueError, match="total count overflows int64"):
        HdrHistogram.decode(encode_counts(g, counts))
    counts[1] = 0
    assert decode(encode_counts(g, counts)).total_count == INT64_MAX
    assert HdrHistogram.decode(encode_counts(g, counts)).total_count == INT64_MAX


@pytest.mark.parametrize("length", [1, 2, 7, 3000])
def test_worst_case_payload_fills_the_preallocated_buffer(length: int) -> None:
    # every count a nine-byte varint: the payload is exactly nine bytes per index
    g = Geometry(1, 10_000, 3)
    counts = np.full(length, INT64_MAX, dtype=np.int64)
    counts[::2] = 2**62  # ZigZag 2**63: nine bytes too
    raw = encode_counts(g, counts)
    assert inflated(raw)[40:] == naive.encode_payload(counts)
    assert len(inflated(raw)) == 40 + 9 * length
    nonzero = np.arange(length, dtype=np.int64)
    assert encode_sparse(g, nonzero, counts) == raw
    np.testing.assert_array_equal(decode(raw).counts[:length], counts)


def test_encoders_leave_their_input_alone() -> None:
    g = Geometry(1, 1000, 2)
    counts = np.zeros(g.counts_len, dtype=np.int64)
    counts[[3, 300]] = [5, 9]
    before = counts.copy()
    raw = encode_counts(g, counts)
    np.testing.assert_array_equal(counts, before)
    h = HdrHistogram.decode(raw)
    h.record(3)  # the decoded histogram owns its counts
    np.testing.assert_array_equal(counts, before)
    assert encode_counts(g, counts) == raw


@SETTINGS
@given(st.lists(st.integers(0, 2**62), max_size=20))
def test_checked_total_matches_python_sum(values: list[int]) -> None:
    total, overflowed = varint.checked_total(np.array(values, dtype=np.int64))
    exact = sum(values)
    assert bool(overflowed) == (exact > INT64_MAX)
    assert int(total) == min(exact, INT64_MAX)


def test_unsigned_and_small_integer_inputs() -> None:
    g = Geometry(1, 1000, 1)
    counts = np.zeros(g.counts_len, dtype=np.int64)
    counts[3] = 7
    raw = encode_counts(g, counts)
    for dtype in (np.uint8, np.int32, np.uint64):
        assert encode_counts(g, counts.astype(dtype)) == raw
        assert encode_sparse(g, np.array([3], dtype=dtype), np.array([7], dtype=dtype)) == raw
    assert encode_counts(g, counts.tolist()) == raw


# ------------------------------------------------------------------------------ interop


@SETTINGS
@given(histograms(min_sig=1, max_count=2**40, max_counts=100_000))
def test_python_reader_decodes_our_bytes(case: tuple[Geometry, np.ndarray]) -> None:
    g, counts = case
    theirs = PyHdrHistogram.decode(encode_counts_base64(g, counts))
    assume(theirs.unit_magnitude == g.unit_magnitude)  # HdrHistogram_py uses a float log2
    assert theirs.counts_len == g.counts_len
    np.testing.assert_array_equal(np.ctypeslib.as_array(theirs.counts).astype(np.int64), counts)
    total = int(counts.sum())
    assert theirs.get_total_count() == total
    um, hm = mags(g)
    if np.flatnonzero(counts).max(initial=0) > 0:  # see test_we_decode_python_writer_bytes
        assert theirs.get_max_value() == naive.max_value(counts, um, hm)
    for p in (0, 1, 25, 50, 70, 90, 98, 99.9, 100):
        assert theirs.get_value_at_percentile(p) == naive.value_at_percentile(counts, p, um, hm, rank="round")


@SETTINGS
@given(
    geometries(min_sig=1, max_counts=100_000),
    st.lists(st.tuples(st.floats(0, 1), st.integers(1, 2**40)), max_size=30),
)
def test_we_decode_python_writer_bytes(g: Geometry, samples: list[tuple[float, int]]) -> None:
    theirs = PyHdrHistogram(g.lowest, g.highest, g.significant_figures)
    assume(theirs.unit_magnitude == g.unit_magnitude and theirs.counts_len == g.counts_len)
    for fraction, count in samples:
        theirs.record_value(int(fraction * g.highest), count)
    h = decode(theirs.encode())
    assert h.geometry == g
    expected = np.ctypeslib.as_array(theirs.counts).astype(np.int64)
    np.testing.assert_array_equal(h.counts, expected)
    assert h.total_count == theirs.get_total_count()
    um, hm = mags(g)
    for p in (0, 10, 50, 75, 90, 99, 99.99, 100):
        assert naive.value_at_percentile(h.counts, p, um, hm, rank="round") == (
            theirs.get_value_at_percentile(p)
        )
    if h.total_count:
        assert naive.min_value(h.counts, um, hm) == theirs.get_min_value()
        assert naive.mean(h.counts, um, hm) == pytest.approx(theirs.get_mean_value(), rel=1e-12)
    if np.flatnonzero(h.counts).max(initial=0) > 0:
        # (With only index 0 populated HdrHistogram_py reports max 0, Java's decoder 2**u - 1.)
        assert naive.max_value(h.counts, um, hm) == theirs.get_max_value()
    # The Python writer writes a lone zero as a run of one (01 where Java writes 00) and an empty
    # histogram as a 0-byte payload; the header and the counts it describes are the same.
    ours = inflated(encode_counts(g, h.counts))
    py = inflated(base64.b64decode(theirs.encode()))
    assert ours[8:40] == py[8:40]
    if h.total_count:
        assert naive.decode_payload(ours[40:]) == naive.decode_payload(py[40:])


def test_python_reader_decodes_our_empty_histogram() -> None:
    g = Geometry(20, 1000, 3)
    theirs = PyHdrHistogram.decode(encode_counts_base64(g, np.zeros(0, dtype=np.int64)))
    assert theirs.get_total_count() == 0
    assert theirs.counts_len == g.counts_len


# ------------------------------------------------------------------------------ lenient decoding


def test_payload_len_past_the_buffer_reads_to_the_end() -> None:
    # Legacy HdrHistogram_c counted the 40-byte header in payload_len.
    payload = bytes([0x05, 0x02, 0x00, 0x04])
    for extra in (40, 1, 10_000):
        h = decode(blob(payload, payload_len=len(payload) + extra))
        assert {int(i): int(h.counts[i]) for i in np.flatnonzero(h.counts)} == {3: 1, 5: 2}


def test_payload_len_shorter_than_the_buffer_reads_only_the_payload() -> None:
    h = decode(blob(bytes([0x05, 0x02, 0x00, 0x04]), payload_len=2))
    assert {int(i): int(h.counts[i]) for i in np.flatnonzero(h.counts)} == {3: 1}


def test_cookie_word_size_bits_are_ignored_like_java() -> None:
    payload = bytes([0x05, 0x02])
    for inner_cookie in (0x1C849303, 0x1C849313, 0x1C849323, 0x1C8493F3):
        for outer_cookie in (0x1C849304, 0x1C849314, 0x1C849384):
            inner = header(payload_len=2, cookie=inner_cookie) + payload
            assert decode(compressed(inner, cookie=outer_cookie)).counts[3] == 1
            assert decode(inner).counts[3] == 1


def test_highest_below_twice_lowest_is_raised() -> None:
    h = decode(blob(b"\x02", lowest=1000, highest=1000))
    assert h.geometry == Geometry(1000, 2000, 3)
    h = decode(blob(b"\x02", lowest=1, highest=1))
    assert h.geometry == Geometry(1, 2, 3)


def test_counts_above_highest_grow_the_array() -> None:
    g = Geometry(1, 2, 0)
    assert g.counts_len == 3
    counts = np.zeros(41, dtype=np.int64)
    counts[40] = 9
    h = decode(encode_counts(g, counts))
    assert len(h.counts) == 41
    assert h.counts[40] == 9


def test_non_canonical_varints_are_accepted() -> None:
    # 0 written on two bytes, 1 written on nine bytes
    payload = bytes([0x80, 0x00]) + bytes([0x82] + [0x80] * 7 + [0x00])
    h = decode(blob(payload))
    assert h.counts[0] == 0
    assert h.counts[1] == 1


def test_text_inputs() -> None:
    g = Geometry(1, 1000, 3)
    counts = np.zeros(g.counts_len, dtype=np.int64)
    counts[100] = 3
    text = encode_counts_base64(g, counts)
    for data in (
        text,
        f"  {text}\n",
        text.encode(),
        f"{text}\r\n".encode(),
        f"\n {text}".encode(),
        bytearray(text.encode()),
    ):
        assert decode(data).counts[100] == 3


def test_repr_is_short() -> None:
    r = repr(decode(encode_counts(Geometry(1, 3_600_000_000, 3), [0, 1])))
    assert r.startswith("DecodedHistogram(geometry=Geometry(lowest=1")
    assert "23552 counts, 1 non-zero" in r


def test_max_counts_len() -> None:
    for g in (Geometry(1, 2, 0), Geometry(1, 1000, 3), Geometry(2**30, 2**31, 5)):
        limit = max_counts_len(g)
        assert limit == naive.counts_index(INT64_MAX, *mags(g)) + 1
        assert limit >= g.counts_len


def test_docstring_examples() -> None:
    assert doctest.testmod(codec, raise_on_error=False).failed == 0


# ------------------------------------------------------------------------------ errors


def _v2_blob() -> bytes:
    g = Geometry(1, 3_600_000_000, 3)
    counts = np.zeros(g.counts_len, dtype=np.int64)
    counts[[10, 2000, 9000]] = [1, 2, 3]
    return encode_counts(g, counts)


BAD_INPUTS = {
    "empty": (b"", "too short"),
    "short": (b"\x1c\x84", "too short"),
    "bad base64 chars": ("HISTF@@@!", "invalid base64"),
    "bad base64 padding": ("HISTFAAAAB5", "invalid base64"),
    "non-ascii text": ("HISTF\u00e9", "invalid base64"),
    "text of garbage": ("hello", "invalid base64|unknown cookie|too short"),
    "unknown cookie": (b"\xde\xad\xbe\xef" + bytes(40), "unknown cookie 0xdeadbeef"),
    "V1 cookie": (header(payload_len=0, cookie=0x1C849301), "unsupported V1"),
    "V0 compressed cookie": (struct.pack(">Ii", 0x1C849309, 0), "unsupported V0 compressed"),
    "compressed too short": (struct.pack(">I", COMPRESSED_COOKIE) + b"\x00", "too short"),
    "compressed length past the buffer": (
        struct.pack(">Ii", COMPRESSED_COOKIE, 1000) + b"x" * 10,
        "does not fit",
    ),
    "negative compressed length": (struct.pack(">Ii", COMPRESSED_COOKIE, -5), "does not fit"),
    "huge compressed length": (struct.pack(">Ii", COMPRESSED_COOKIE, 2**31 - 1), "does not fit"),
    "trailing bytes": (_v2_blob() + b"\x00", "unexpected bytes after"),
    "truncated zlib": (
        struct.pack(">Ii", COMPRESSED_COOKIE, len(_v2_blob()) - 12) + _v2_blob()[8:-4],
        "truncated zlib",
    ),
    "corrupt zlib": (
        struct.pack(">Ii", COMPRESSED_COOKIE, 6) + b"\x78\x9c\xff\xff\xff\xff",
        "corrupt zlib",
    ),
    "bad adler32": (_v2_blob()[:-1] + bytes([_v2_blob()[-1] ^ 1]), "corrupt zlib"),
    "zlib stream then garbage": (
        compressed(header(payload_len=0))[:8] + zlib.compress(header(payload_len=0)) + b"zz",
        "does not fit|unexpected bytes",
    ),
    "inflated shorter than header": (compressed(b"\x1c\x84\x93\x13" + bytes(10)), "too short"),
    "inner cookie": (compressed(header(payload_len=0, cookie=0x12345678)), "unknown cookie"),
    "inner compressed cookie": (
        compressed(header(payload_len=0, cookie=COMPRESSED_COOKIE)),
        "cookie",
    ),
    "uncompressed too short": (header(payload_len=0)[:30], "too short"),
    "significant figures 6": (blob(b"", sig=6), "significant figures"),
    "significant figures -1": (blob(b"", sig=-1), "significant figures"),
    "lowest 0": (blob(b"", lowest=0), "lowest"),
    "lowest negative": (blob(b"", lowest=-5), "lowest"),
    "lowest huge": (blob(b"", lowest=2**61, highest=2**62), "invalid V2 header"),
    "lowest too large for sig": (
        blob(b"", lowest=2**50, highest=2**62, sig=5),
        "invalid V2 header",
    ),
    "highest negative": (blob(b"", highest=-1), "highest"),
    "highest zero": (blob(b"", highest=0), "highest"),
    "negative payload length": (blob(b"", payload_len=-1), "negative payload length"),
    "truncated varint": (blob(b"\x02\x80"), "truncated varint at payload byte 1"),
    "truncated nine-byte varint": (blob(b"\xff" * 8), "truncated varint"),
    "zero run past int64 values": (blob(b"\xff" * 8 + b"\x7f"), "beyond"),
    "zero run of 2**63": (blob(b"\xff" * 9), "beyond"),
    # max_counts_len of (2**40, 2**41, 0) is 24: nine runs of 3 then a count at index 27
    "count past int64 values": (
        blob(b"\x05" * 9 + b"\x02", sig=0, lowest=2**40, highest=2**41),
        "beyond",
    ),
    "inflation bomb": (
        blob(bytes(100_000), sig=0, lowest=2**40, highest=2**41),
        "exceeds",
    ),
    "uncompressed bomb": (
        header(payload_len=100_000, sig=0, lowest=2**40, highest=2**41) + bytes(100_000),
        "beyond",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_value_error(name: str) -> None:
    data, match = BAD_INPUTS[name]
    with pytest.raises(ValueError, match=match):
        decode(data)


def test_index_limit_is_exact() -> None:
    g = Geometry(2**40, 2**41, 0)
    limit = max_counts_len(g)
    assert limit == 24
    run = naive.zigzag_encode(-limit)
    # a run that ends exactly at the limit is fine (no count follows) ...
    h = decode(blob(run, sig=0, lowest=2**40, highest=2**41))
    assert h.total_count == 0
    # ... a count at the last addressable index is fine ...
    h = decode(blob(naive.zigzag_encode(-(limit - 1)) + b"\x02", sig=0, lowest=2**40, highest=2**41))
    assert h.counts[limit - 1] == 1
    assert len(h.counts) == limit
    # ... one more is not
    with pytest.raises(ValueError, match="beyond"):
        decode(blob(run + b"\x02", sig=0, lowest=2**40, highest=2**41))
    with pytest.raises(ValueError, match="beyond"):
        decode(blob(naive.zigzag_encode(-(limit + 1)), sig=0, lowest=2**40, highest=2**41))


def test_wrong_types() -> None:
    with pytest.raises(TypeError):
        decode(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decode([1, 2, 3])  # type: ignore[arg-type]
    g = Geometry(1, 1000, 3)
    with pytest.raises(TypeError, match="integers"):
        encode_counts(g, np.ones(10, dtype=np.float64))
    with pytest.raises(TypeError, match="integers"):
        encode_sparse(g, np.array([1.0]), np.array([1]))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g: encode_counts(g, np.array([1, -1])), "counts must be >= 0"),
        (lambda g: encode_counts(g, np.array([0, 2, -3, -1, 0])), "got -3 at index 2"),
        (lambda g: encode_counts(g, np.ones((2, 2), dtype=np.int64)), "one-dimensional"),
        (lambda g: encode_counts(g, np.array([2**64 - 1], dtype=np.uint64)), "fit in int64"),
        (lambda g: encode_counts(g, [1], level=10), "level"),
        (lambda g: encode_counts(g, [1], level=True), "level"),
        (
            lambda g: encode_counts(
                g, np.eye(1, max_counts_len(g) + 1, max_counts_len(g), dtype=np.int64)[0]
            ),
            "beyond the int64 value range",
        ),
        (lambda g: encode_sparse(g, [1, 2], [1]), "same length"),
        (lambda g: encode_sparse(g, [2, 1], [1, 1]), "strictly increasing"),
        (lambda g: encode_sparse(g, [1, 1], [1, 1]), "strictly increasing"),
        (lambda g: encode_sparse(g, [1, 5, 4], [1, 0, 1]), "4 after 5 at position 2"),
        (lambda g: encode_sparse(g, [1, 5], [0, -2]), "counts must be >= 0, got -2 at position 1"),
        (lambda g: encode_sparse(g, [-1], [1]), "indices must be >= 0"),
        (lambda g: encode_sparse(g, [1], [-1]), "counts must be >= 0"),
        (lambda g: encode_sparse(g, [max_counts_len(g)], [1]), "beyond the int64 value range"),
        (lambda g: encode_sparse(g, [1], [1], level=-2), "level"),
    ],
)
def test_encoder_rejects_bad_input(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call(Geometry(1, 1000, 3))


# ------------------------------------------------------------------------------ fuzzing


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_or_value_error(data)
    decode_or_value_error(struct.pack(">I", COMPRESSED_COOKIE) + data)
    decode_or_value_error(struct.pack(">I", ENCODING_COOKIE) + data)
    decode_or_value_error(base64.b64encode(data))
    decode_or_value_error("HISTF" + data.decode("latin-1"))


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=60))
def test_fuzz_random_payload_and_header(payload: bytes, head: bytes) -> None:
    """A sane header with garbage counts, and garbage headers, behind a valid zlib stream."""
    decode_or_value_error(blob(payload))
    decode_or_value_error(blob(payload, sig=5, lowest=1, highest=2**62))
    decode_or_value_error(header(payload_len=len(payload)) + payload)
    garbage_header = (struct.pack(">I", ENCODING_COOKIE) + head + bytes(40))[:40]
    decode_or_value_error(compressed(garbage_header + payload))
    decode_or_value_error(garbage_header + payload)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 12))]
    return bytes(out)


@FUZZ
@given(st.data(), histograms(max_counts=60_000, max_count=2**62))
def test_fuzz_mutated_encodings(data: st.DataObject, case: tuple[Geometry, np.ndarray]) -> None:
    g, counts = case
    raw = encode_counts(g, counts)
    inner = inflated(raw)
    # mutations of the compressed bytes, of their base64 text, and of the inflated content
    # (re-framed, so that zlib accepts it and the header and payload checks are exercised)
    decode_or_value_error(data.draw(mutations(raw)))
    decode_or_value_error(data.draw(mutations(raw)).decode("latin-1"))
    decode_or_value_error(data.draw(mutations(base64.b64encode(raw))))
    mutated_inner = data.draw(mutations(inner))
    decode_or_value_error(compressed(mutated_inner))
    decode_or_value_error(mutated_inner)
