"""Interop vectors: histograms encoded by the Java, C, Go and Python HdrHistogram implementations.

The base64 strings are public test data of the HdrHistogram projects (provenance next to each one);
the expected figures are the ones those projects assert, or derived from the decoded counts with the
Java / C formulas (``naive_hdr``). Statistics are computed here from the decoded counts with the
naive reference, and, once ``jobmetrics.HdrHistogram`` exists, checked through the public class too.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import naive_hdr as naive
from jobmetrics.codec import DecodedHistogram, decode, encode_counts, encode_sparse
from jobmetrics.geometry import Geometry

hdrh_histogram = pytest.importorskip("hdrh.histogram")
PyHdrHistogram = hdrh_histogram.HdrHistogram


@dataclass(frozen=True)
class Vector:
    blob: str
    lowest: int
    highest: int
    sig: int
    payload_len: int
    # "java" (counts up to the last non-zero index, one zero when empty), "python", "legacy-c", ...
    writer: str
    total: int
    min: int = 0
    max: int = 0
    mean: float = 0.0
    stddev: float | None = None
    # percentile -> (ceil-rank value as Java/Rust, round-rank value as C/Go/Python)
    percentiles: dict[float, tuple[int, int]] = field(default_factory=dict)
    # (value_from_index, count) of every non-zero index, when stated
    buckets: tuple[tuple[int, int], ...] | None = None
    counts_len: int | None = None
    normalizing_index_offset: int = 0
    conversion_ratio: float = 1.0


def _same(value: int) -> tuple[int, int]:
    return value, value


VECTORS: dict[str, Vector] = {
    # HdrHistogram/HdrHistogram_py @ 5d399a669282c10442fc67f1b66b37779ae49b38, README.rst, the
    # `dump_hdrh` example (TotalCount, Max, Mean, StdDeviation printed by the README).
    "V1": Vector(
        blob="HISTFAAAACl4nJNpmSzMwMDAxQABzFCaEUzOmNZg/wEi0NzIyPSYlWmpGBMAh4gG4A==",
        lowest=1,
        highest=10_000_000,
        sig=3,
        payload_len=10,
        writer="java",
        total=3,
        min=139520,
        max=477695,
        mean=268074.666667,
        stddev=149397.389690,
        percentiles={
            0: _same(139520),
            25: _same(139647),
            50: _same(187135),
            75: (477695, 187135),
            90: _same(477695),
            100: _same(477695),
        },
        buckets=((139520, 1), (187008, 1), (477440, 1)),
        counts_len=15360,
    ),
    # First interval of jHiccup-2.0.7S.logV2.hlog (git blob
    # f9e801f9d50e2c60f577a68ff817c98b6d0169d0, in HdrHistogram/HdrHistogram
    # src/test/resources/org/HdrHistogram/, HdrHistogram_c, HdrHistogram_py and hdrhistogram-go
    # test/); goldens asserted by hdrhistogram-go
    # @ 0500d8c71ec849a63147b0703f7932fbe04b79d7 log_writer_test.go. Java writer, zlib level 9.
    "V2": Vector(
        blob=(
            "HISTFAAAAEV42pNpmSzMwMCgyAABTBDKT4GBgdnNYMcCBvsPEBEJISEuATEZMQ4uASkhIR4nrxg9v2lMaxhv"
            "MekILGZkKmcCAEf2CsI="
        ),
        lowest=20000,
        highest=3_600_000_000_000,
        sig=2,
        payload_len=33,
        writer="java",
        total=741,
        min=0,
        max=2768895,
        mean=301998.466937,
        stddev=141377.577254,
        percentiles={
            25: _same(278527),
            50: _same(344063),
            75: _same(376831),
            90: _same(376831),
            99: _same(409599),
            99.9: (2768895, 1769471),
            100: _same(2768895),
        },
    ),
    # hdrhistogram-go @ 0500d8c71ec849a63147b0703f7932fbe04b79d7 hdr_encoding_test.go
    # (TestHistogram_Load); HdrHistogramJS README: build() + recordValue(42). Auto-resizing writer:
    # highest=2 below the recorded 42.
    "V3": Vector(
        blob="HISTFAAAAB542pNpmSzMwMDAxAABzFCaEUoz2X+AMIKZAEARAtM=",
        lowest=1,
        highest=2,
        sig=3,
        payload_len=2,
        writer="java",
        total=1,
        min=42,
        max=42,
        mean=42.0,
        stddev=0.0,
        percentiles={p: _same(42) for p in (0, 25, 50, 90, 99.9, 100)},
        buckets=((42, 1),),
    ),
    # hdrhistogram-go @ 0500d8c71ec849a63147b0703f7932fbe04b79d7 hdr_encoding_test.go
    # (TestHistogram_Load, TestHistogram_Dump_empty); the Python writer's empty histogram (0-byte
    # payload).
    "V4": Vector(
        blob="HISTFAAAABl4nJNpmSzMgADMUFoEyn1h/wHCAgBDogN4",
        lowest=20,
        highest=1000,
        sig=3,
        payload_len=0,
        writer="python",
        total=0,
        stddev=0.0,
        percentiles={p: _same(0) for p in (0, 50, 99, 100)},
        buckets=(),
        counts_len=2048,
    ),
    # HdrHistogram_py @ 5d399a669282c10442fc67f1b66b37779ae49b38 test/test_hdrhistogram.py
    # (ENCODE_SAMPLES_HDRHISTOGRAM_C): pre-2015-11 HdrHistogram_c, whose payload_len counted the
    # 40-byte header too (fixed by HdrHistogram_c 65e0b90).
    "V5a": Vector(
        blob="HISTFAAAACl4nJNpmSzMwMBgyAABzFCaEURcm7yEwf4DROA8/4I5jNM7mJgAlWkH9g==",
        lowest=1,
        highest=3_600_000_000,
        sig=3,
        payload_len=49,
        writer="legacy-c",
        total=10001,
        min=1000,
        max=100007935,
        mean=10996.4172,
        stddev=999641.7158,
        percentiles={
            30: _same(1000),
            50: _same(1000),
            75: _same(1000),
            90: _same(1000),
            99: _same(1000),
            99.9: _same(1000),
            99.99: _same(1000),
            99.999: _same(100007935),
            100: _same(100007935),
        },
    ),
    "V5b": Vector(
        blob=(
            "HISTFAAAAP94nJNpmSzMwCByigECmKE0I4i4NnkJg/0HiMB5/gVzGD8aM/3lZ7rPyTSbjektC9N7FqaHzEzbmZi2"
            "whCEvZKRaSYj02wwiYng4tFM3lDoC2dhhwh5UyZlJlUMjClCmgpMEUUmQSZ+IBZEojFFCMvQRwUxenmZ2MGQFUqz"
            "4+CTo4I2pg4dFdQylZWJkYkZCaPyMEUIydPLjMHrssFixuB12XD0HRAwMsFJgkwilZHJHHKmjzp41MFDOjhYmFiQ"
            "EUEmMWqGsvKBd8Fwd/Co/waTC9jYOMAIiSJRhLbKh5x9Q87Bo/YNbfsoM4CPhw+IIJAkxnDXN+QcTIpyAPnGh6k="
        ),
        lowest=1,
        highest=3_600_000_000,
        sig=3,
        payload_len=5322,
        writer="legacy-c",
        total=20000,
        min=1000,
        max=100007935,
        mean=25003006.6994,
        stddev=32276410.4791,
        percentiles={
            30: _same(1000),
            50: _same(1000),
            75: _same(50003967),
            90: _same(80019455),
            99: _same(98041855),
            99.9: _same(99811327),
            99.99: _same(100007935),
            99.999: _same(100007935),
            100: _same(100007935),
        },
    ),
    # hdrhistogram-go @ 00c06b7a7f0bac756bdc9d379095fb6d029ca628 hdr_issues_84_90_test.go
    # (foreignBoundary2048): Java and C (1, 2048, 3) + recordValue(2048), byte-identical streams.
    "V6": Vector(
        blob="HISTFAAAACB4nJNpmSzMwMDAzAABMJoRQnEw2H+AsP7LMwEARZgDpQ==",
        lowest=1,
        highest=2048,
        sig=3,
        payload_len=3,
        writer="java",
        total=1,
        min=2048,
        max=2049,
        mean=2049.0,
        stddev=0.0,
        percentiles={0: _same(2048), 50: _same(2049), 100: _same(2049)},
        buckets=((2048, 1),),
        counts_len=3072,
    ),
    # Same file as V6 (javaZeroDigits1000 / javaZeroDigits10000): Java PackedHistogram with zero
    # significant digits + recordValue(100).
    "V7a": Vector(
        blob="HISTFAAAAB14nJNpmSzMwMDAxIAKGCEU8wv7DxAWLxMASToDcw==",
        lowest=1,
        highest=1000,
        sig=0,
        payload_len=2,
        writer="java",
        total=1,
        min=64,
        max=127,
        mean=96.0,
        stddev=0.0,
        percentiles={0: _same(64), 50: _same(127), 100: _same(127)},
        buckets=((64, 1),),
    ),
    "V7b": Vector(
        blob="HISTFAAAAB14nJNpmSzMwMDAxIAKGCGUuoD9BwiLlwkAQaICvw==",
        lowest=1,
        highest=10000,
        sig=0,
        payload_len=2,
        writer="java",
        total=1,
        min=64,
        max=127,
        mean=96.0,
        stddev=0.0,
        percentiles={0: _same(64), 50: _same(127), 100: _same(127)},
        buckets=((64, 1),),
    ),
    # hdrhistogram-go @ 0500d8c71ec849a63147b0703f7932fbe04b79d7 hdr_encoding_test.go (second
    # string of TestHistogram_Load): legacy Go writer with normalizing_index_offset=1 and the
    # conversion ratio's raw bits 0x1 (5e-324). Go reads it as one value 42.
    "Q1": Vector(
        blob="HISTFAAAAB94nJNpmSzMwMDABMSMQMzMAAGMUJoJxg9mAgA1TQGm",
        lowest=1,
        highest=2,
        sig=3,
        payload_len=2,
        writer="go-legacy",
        total=1,
        min=42,
        max=42,
        mean=42.0,
        stddev=0.0,
        percentiles={p: _same(42) for p in (0, 50, 100)},
        buckets=((42, 1),),
        normalizing_index_offset=1,
        conversion_ratio=5e-324,
    ),
    # hdrhistogram-go packed_compatibility_test.go: Java PackedHistogram after shiftValuesLeft(2)
    # (normalizingIndexOffset 2048). Java writes counts in logical order: 7 x (1234 << 2).
    "Q2": Vector(
        blob="HISTFAAAACR4nJNpmSzMwMDAzMDAwQChwYARTPI7Odh/gAgsNuYDAEyEA/o=",
        lowest=1,
        highest=1_000_000,
        sig=3,
        payload_len=3,
        writer="java-offset",
        total=7,
        min=4936,
        max=4939,
        mean=4938.0,
        stddev=0.0,
        percentiles={0: _same(4936), 50: _same(4939), 100: _same(4939)},
        buckets=((4936, 7),),
        normalizing_index_offset=2048,
    ),
    # hdrhistogram-go packed_compatibility_test.go: C writer with conversion_ratio 2.5, 7 x 1234.
    "Q3": Vector(
        blob="HISTFAAAACF4nJNpmSzMwMDAzAABMJoRTPI7OTiwQAQWC/MBAEIPAuc=",
        lowest=1,
        highest=1_000_000,
        sig=3,
        payload_len=3,
        writer="c-ratio",
        total=7,
        min=1234,
        max=1234,
        mean=1234.0,
        stddev=0.0,
        percentiles={0: _same(1234), 50: _same(1234), 100: _same(1234)},
        buckets=((1234, 7),),
        conversion_ratio=2.5,
    ),
    # hdrhistogram-go packed_compatibility_test.go: buckets [MaxInt64 at value 0, 1 at value 1];
    # the true total 2**63 overflows int64.
    "Q4": Vector(
        blob="HISTFAAAACJ4nJNpmSzMwMDAxQABzFCaEUKpC9h/gLD+/YcCJgCOiQuz",
        lowest=1,
        highest=10000,
        sig=3,
        payload_len=10,
        writer="java",
        total=2**63,
        min=0,
        max=1,
        buckets=((0, 2**63 - 1), (1, 1)),
    ),
}

JAVA_WRITTEN = [name for name, v in VECTORS.items() if v.writer == "java"]


def _raw(blob: str) -> bytes:
    return base64.b64decode(blob)


def _inflated(raw: bytes) -> bytes:
    return zlib.decompress(raw[8:])


def _decoded(name: str) -> DecodedHistogram:
    return decode(VECTORS[name].blob)


def _mags(h: DecodedHistogram) -> tuple[int, int]:
    return h.geometry.unit_magnitude, h.geometry.half_magnitude


# ------------------------------------------------------------------------------ header and counts


@pytest.mark.parametrize("name", list(VECTORS))
def test_header_fields(name: str) -> None:
    v = VECTORS[name]
    h = _decoded(name)
    assert h.geometry == Geometry(v.lowest, v.highest, v.sig)
    assert h.normalizing_index_offset == v.normalizing_index_offset
    assert h.conversion_ratio == v.conversion_ratio
    assert h.counts.dtype == np.int64
    assert len(h.counts) >= h.geometry.counts_len
    if v.counts_len is not None:
        assert len(h.counts) == v.counts_len
    inner = _inflated(_raw(v.blob))
    assert struct.unpack_from(">i", inner, 4)[0] == v.payload_len


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items() if v.buckets is not None])
def test_recorded_buckets(name: str) -> None:
    v = VECTORS[name]
    h = _decoded(name)
    got = [(naive.value_from_index(int(i), *_mags(h)), int(h.counts[i])) for i in np.flatnonzero(h.counts)]
    assert got == list(v.buckets or ())


@pytest.mark.parametrize("name", list(VECTORS))
def test_naive_statistics(name: str) -> None:
    v = VECTORS[name]
    h = _decoded(name)
    s = naive.stats(h.counts, *_mags(h))
    assert s.total == v.total
    assert (s.min, s.max) == (v.min, v.max)
    if name != "Q4":
        assert s.mean == pytest.approx(v.mean, abs=1e-4)
    if v.stddev is not None:
        assert s.stddev == pytest.approx(v.stddev, abs=1e-4)


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items() if v.percentiles])
def test_naive_percentiles_both_rank_rules(name: str) -> None:
    v = VECTORS[name]
    h = _decoded(name)
    for p, (ceil_value, round_value) in v.percentiles.items():
        assert naive.value_at_percentile(h.counts, p, *_mags(h), rank="ceil") == ceil_value, p
        assert naive.value_at_percentile(h.counts, p, *_mags(h), rank="round") == round_value, p


def test_v1_readme_figures() -> None:
    h = _decoded("V1")
    assert (h.geometry.bucket_count, h.geometry.sub_bucket_count) == (14, 2048)


def test_v2_index_zero_holds_the_values_below_lowest() -> None:
    h = _decoded("V2")
    assert h.geometry.unit_magnitude == 14
    assert h.counts[0] == 12
    assert naive.highest_equivalent(0, *_mags(h)) == 16383


def test_v3_value_above_highest_is_kept() -> None:
    h = _decoded("V3")
    assert h.geometry.highest == 2
    assert h.counts[naive.counts_index(42, *_mags(h))] == 1
    assert h.total_count == 1


def test_v4_empty_with_zero_byte_payload() -> None:
    h = _decoded("V4")
    assert h.geometry.unit_magnitude == 4
    assert h.total_count == 0
    assert not h.counts.any()


def test_v6_highest_on_a_bucket_boundary_is_trackable() -> None:
    h = _decoded("V6")
    assert h.geometry.bucket_count == 2
    assert h.counts[naive.counts_index(2048, *_mags(h))] == 1


@pytest.mark.parametrize("name", ["V7a", "V7b"])
def test_v7_zero_significant_figures(name: str) -> None:
    h = _decoded(name)
    assert h.geometry.significant_figures == 0
    assert h.geometry.sub_bucket_count == 2
    assert h.counts[naive.counts_index(100, *_mags(h))] == 1


# ------------------------------------------------------------------------------ re-encoding


@pytest.mark.parametrize("name", JAVA_WRITTEN)
def test_reencode_gives_the_java_inflated_bytes(name: str) -> None:
    raw = _raw(VECTORS[name].blob)
    h = decode(raw)
    level = 9 if raw[8:10] == b"\x78\xda" else 6
    ours = encode_counts(h.geometry, h.counts, level=level)
    assert _inflated(ours) == _inflated(raw)
    nonzero = np.flatnonzero(h.counts)
    sparse = encode_sparse(h.geometry, nonzero, h.counts[nonzero], level=level)
    assert sparse == ours


@pytest.mark.skipif("ng" in zlib.ZLIB_RUNTIME_VERSION.lower(), reason="zlib-ng deflates differently")
@pytest.mark.parametrize("name", JAVA_WRITTEN)
def test_reencode_gives_the_java_compressed_bytes(name: str) -> None:
    raw = _raw(VECTORS[name].blob)
    level = 9 if raw[8:10] == b"\x78\xda" else 6
    h = decode(raw)
    assert encode_counts(h.geometry, h.counts, level=level) == raw


def test_v4_reencodes_with_javas_one_byte_empty_payload() -> None:
    raw = _raw(VECTORS["V4"].blob)
    h = decode(raw)
    ours = _inflated(encode_counts(h.geometry, h.counts))
    theirs = _inflated(raw)
    assert len(theirs) == 40
    assert ours == theirs[:4] + struct.pack(">i", 1) + theirs[8:] + b"\x00"
    # and the Python writer produces exactly the vector
    assert PyHdrHistogram(20, 1000, 3).encode().decode("ascii") == VECTORS["V4"].blob


@pytest.mark.parametrize("name", ["V5a", "V5b"])
def test_v5_legacy_payload_length_counted_the_header(name: str) -> None:
    raw = _raw(VECTORS[name].blob)
    theirs = _inflated(raw)
    assert struct.unpack_from(">i", theirs, 4)[0] == len(theirs)  # 40 + the counts bytes
    h = decode(raw)
    ours = _inflated(encode_counts(h.geometry, h.counts))
    assert struct.unpack_from(">i", ours, 4)[0] == len(ours) - 40
    assert ours[8:40] == theirs[8:40]
    # The legacy C writer also wrote a lone zero as a run of one (-1) where Java writes 0.
    assert naive.decode_payload(ours[40:]) == naive.decode_payload(theirs[40:])
    assert decode(ours).counts.tolist() == h.counts.tolist()


def test_q1_offset_and_ratio_are_metadata_and_reencoding_normalises_them() -> None:
    h = _decoded("Q1")
    assert h.total_count == 1
    ours = _inflated(encode_counts(h.geometry, h.counts))
    offset, ratio = struct.unpack_from(">i", ours, 8)[0], struct.unpack_from(">d", ours, 32)[0]
    assert (offset, ratio) == (0, 1.0)
    assert ours[40:] == _inflated(_raw(VECTORS["Q1"].blob))[40:]


def test_q2_counts_are_in_logical_order() -> None:
    h = _decoded("Q2")
    assert h.normalizing_index_offset == 2048
    assert h.counts[naive.counts_index(1234 << 2, *_mags(h))] == 7
    assert h.total_count == 7


def test_q3_conversion_ratio_does_not_scale_values() -> None:
    h = _decoded("Q3")
    assert h.conversion_ratio == 2.5
    assert h.counts[naive.counts_index(1234, *_mags(h))] == 7
    # the double view a Java reader would offer
    assert 1234 * h.conversion_ratio == 3085.0


def test_q4_counts_decode_but_total_count_overflow_raises() -> None:
    h = _decoded("Q4")
    assert int(h.counts[0]) == 2**63 - 1
    assert int(h.counts[1]) == 1
    with pytest.raises(ValueError, match="total count overflows int64"):
        _ = h.total_count
    # the bytes round-trip although the total does not fit
    assert _inflated(encode_counts(h.geometry, h.counts)) == _inflated(_raw(VECTORS["Q4"].blob))


# ------------------------------------------------------------------------------ semantic vectors


def test_s1_rank_policy_split_through_the_codec() -> None:
    # hdrhistogram-go PACKED_COMPATIBILITY.md / packed_compatibility_test.go
    # (TestPackedCompatibilityPercentilePolicy): (100, 100000, 3) holding 1000, 2000, 3000.
    py = PyHdrHistogram(100, 100_000, 3)
    for value in (1000, 2000, 3000):
        py.record_value(value)
    for blob in (py.encode(), encode_sparse(*_s1_sparse())):
        h = decode(blob)
        mags = _mags(h)
        assert naive.value_at_percentile(h.counts, 40, *mags, rank="round") == 1023
        assert naive.value_at_percentile(h.counts, 40, *mags, rank="ceil") == 2047
        assert naive.value_at_percentile(h.counts, 66.67, *mags, rank="round") == 2047
        assert naive.value_at_percentile(h.counts, 66.67, *mags, rank="ceil") == 3007
        assert naive.value_at_percentile(h.counts, 100, *mags) == 3007
        assert naive.value_at_percentile(h.counts, 0, *mags) == 960
        s = naive.stats(h.counts, *mags)
        assert (s.min, s.max) == (960, 3007)
        assert s.mean == pytest.approx(1994.666667, abs=1e-6)
    # Python's rank rule is the round rule
    assert py.get_value_at_percentile(40) == 1023
    assert py.get_value_at_percentile(66.67) == 2047


def _s1_sparse() -> tuple[Geometry, np.ndarray, np.ndarray]:
    g = Geometry(100, 100_000, 3)
    mags = (g.unit_magnitude, g.half_magnitude)
    indices = np.array([naive.counts_index(v, *mags) for v in (1000, 2000, 3000)], dtype=np.int64)
    return g, indices, np.ones(3, dtype=np.int64)


def test_s2_corrected_values_survive_the_codec() -> None:
    # Java recordSingleValueWithExpectedInterval: 25 with interval 10 records 25 and 15 only.
    assert naive.corrected_values(25, 10) == [25, 15]
    assert len(naive.corrected_values(100_000_000, 10_000)) == 10_000
    layout = naive.Layout(1, 1000, 3)
    counts = naive.counts_from_values(layout, naive.corrected_values(25, 10))
    h = decode(encode_counts(Geometry(1, 1000, 3), counts))
    assert h.total_count == 2
    assert [naive.value_from_index(int(i), *_mags(h)) for i in np.flatnonzero(h.counts)] == [15, 25]


# ------------------------------------------------------------------------------ other readers


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items() if v.sig >= 1 and n != "Q4"])
def test_python_reader_agrees(name: str) -> None:
    v = VECTORS[name]
    theirs = PyHdrHistogram.decode(v.blob)
    h = _decoded(name)
    assert theirs.get_total_count() == h.total_count
    mags = _mags(h)
    for p in (0, 25, 50, 75, 90, 99, 99.9, 99.99, 100):
        expected = naive.value_at_percentile(h.counts, p, *mags, rank="round")
        assert theirs.get_value_at_percentile(p) == expected, p
    assert theirs.get_max_value() == naive.max_value(h.counts, *mags)


# ------------------------------------------------------------------------------ the public class


def _hdr_class() -> type | None:
    try:
        import jobmetrics
    except ImportError:  # pragma: no cover - the package is installed in the test environment
        return None
    cls = getattr(jobmetrics, "HdrHistogram", None)
    return cls if cls is not None and hasattr(cls, "decode") else None


def _read(obj: object, name: str) -> object:
    value = getattr(obj, name)
    return value() if callable(value) else value


@pytest.mark.parametrize("name", [n for n in VECTORS if n != "Q4"])
def test_public_class_matches_vector(name: str) -> None:
    cls = _hdr_class()
    if cls is None:
        pytest.skip("jobmetrics.HdrHistogram is not available yet")
    v = VECTORS[name]
    for data in (v.blob, v.blob.encode("ascii"), _raw(v.blob)):
        hist = cls.decode(data)  # type: ignore[attr-defined]
        assert _read(hist, "total_count") == v.total
        assert _read(hist, "min") == v.min
        assert _read(hist, "max") == v.max
        assert _read(hist, "mean") == pytest.approx(v.mean, abs=1e-4)
        for p, (ceil_value, round_value) in v.percentiles.items():
            assert hist.value_at_quantile(p / 100) == ceil_value, p
            assert hist.value_at_quantile(p / 100, rank="round") == round_value, p


# ------------------------------------------------------------------------------ the naive reference


@pytest.mark.parametrize("sig", range(6))
@pytest.mark.parametrize("lowest", [1, 2, 3, 1000, 20000, 2**20])
def test_naive_layout_matches_geometry(sig: int, lowest: int) -> None:
    for highest in (2 * lowest, 2048 * lowest, 3_600_000_000, 2**63 - 1):
        if highest < 2 * lowest:
            continue
        g = Geometry(lowest, highest, sig)
        layout = naive.Layout(lowest, highest, sig)
        assert layout.magnitudes == (g.unit_magnitude, g.half_magnitude)
        assert (layout.bucket_count, layout.counts_len) == (g.bucket_count, g.counts_len)


def test_naive_index_functions_invert_each_other() -> None:
    for lowest, sig in ((1, 0), (1, 3), (7, 2), (20000, 2), (1024, 5)):
        mags = naive.Layout(lowest, 2 * lowest, sig).magnitudes
        for index in range(0, 20000, 7):
            low = naive.value_from_index(index, *mags)
            high = naive.highest_equivalent(index, *mags)
            if high >= 2**63 - 1:
                break
            assert naive.counts_index(low, *mags) == index
            assert naive.counts_index(high, *mags) == index
            assert naive.counts_index(high + 1, *mags) == index + 1
            assert low <= naive.median_equivalent(index, *mags) <= high
