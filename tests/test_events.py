"""Event normalisation: input types, time formats, states, ids, rejections (jobmetrics.events)."""

from __future__ import annotations

import pickle
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobmetrics._kernels.hashing import ZERO_KEY
from jobmetrics.events import (
    EndpointRegistry,
    EventBatch,
    Rejections,
    hash_id,
    hash_ids,
    normalize,
)
from jobmetrics.states import JobState, Kind, WorkerState

fast = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])

T0 = 1_700_000_000_000  # epoch ms
T0_US = T0 * 1000

# --------------------------------------------------------------------------------------------------
# Pure-Python reference of the id hash (docs/events.md)
# --------------------------------------------------------------------------------------------------

M64 = (1 << 64) - 1
P1, P2 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F
SEED = 0x243F6A8885A308D3


def _round(h: int, w: int) -> int:
    h = (h + w * P2) & M64
    h = ((h << 31) | (h >> 33)) & M64
    return (h * P1) & M64


def _finalise(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _signed(h: int) -> int:
    if h == 0:
        h = ZERO_KEY
    return h - (1 << 64) if h >= 1 << 63 else h


def ref_hash(value: str | bytes | None) -> int:
    if value is None:
        return 0
    b = value.encode() if isinstance(value, str) else value
    n = len(b)
    h = SEED ^ ((n * P1) & M64)
    i = 0
    while i + 8 < n:
        h = _round(h, int.from_bytes(b[i : i + 8], "little"))
        i += 8
    if n >= 8:
        w = int.from_bytes(b[n - 8 :], "little")
    elif n >= 4:
        w = int.from_bytes(b[:4], "little") | int.from_bytes(b[n - 4 :], "little") << 32
    elif n > 0:
        w = b[0] << 16 | b[n >> 1] << 8 | b[n - 1]
    else:
        w = 0
    return _signed(_finalise(_round(h, w)))


def ref_int_key(value: int | None) -> int:
    return 0 if value is None else _signed(_finalise(value & M64))


# --------------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------------


def test_hash_every_length_and_alignment() -> None:
    rng = np.random.default_rng(7)
    blob = bytes(rng.integers(0, 256, size=120, dtype=np.uint8))
    values = [blob[start : start + length] for length in range(101) for start in range(8)]
    for typ in (pa.binary(), pa.large_binary()):
        keys = hash_ids(pa.array(values, typ))
        assert keys.tolist() == [ref_hash(v) for v in values]


@fast
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=30), st.integers(0, 9))
def test_hash_matches_reference_on_sliced_strings(values: list[str | None], cut: int) -> None:
    padded = ["x" * cut, *values, "tail"]
    arr = pa.array(padded, pa.string()).slice(1, len(values))
    expected = [ref_hash(v) for v in values]
    assert hash_ids(arr).tolist() == expected
    assert hash_ids(arr.cast(pa.large_string())).tolist() == expected


@fast
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=40))
def test_string_large_string_dictionary_chunked_agree(values: list[str | None]) -> None:
    base = hash_ids(pa.array(values, pa.string()))
    assert (base == 0).tolist() == [v is None for v in values]
    assert (hash_ids(pa.array(values, pa.large_string())) == base).all()
    assert (hash_ids(pa.array(values, pa.string()).dictionary_encode()) == base).all()
    assert (hash_ids(pa.array(values, pa.string_view())) == base).all()
    half = len(values) // 2
    chunked = pa.chunked_array(
        [pa.array(values[:half], pa.large_string()), pa.array(values[half:], pa.large_string())]
    )
    assert (hash_ids(chunked) == base).all()
    assert [hash_id(v) for v in values] == base.tolist()


def test_hash_non_ascii_and_empty() -> None:
    values = ["", "é", "日本語のジョブ", "🚀" * 9, "a\x00b"]
    assert hash_ids(values).tolist() == [ref_hash(v) for v in values]
    assert 0 not in hash_ids(values).tolist()


@fast
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=30))
def test_integer_ids_are_a_bijection(values: list[int | None]) -> None:
    keys = hash_ids(pa.array(values, pa.int64()))
    assert keys.tolist() == [ref_int_key(v) for v in values]
    present = [v for v in values if v is not None]
    assert len(set(keys[keys != 0].tolist())) == len(set(present))


def test_integer_id_types() -> None:
    keys = hash_ids(pa.array([0, 1, 2**64 - 1], pa.uint64()))
    assert keys.tolist() == [ZERO_KEY, ref_int_key(1), ref_int_key(-1)]
    assert hash_ids(pa.array([5], pa.int8())).tolist() == [ref_int_key(5)]
    # integer ids that went through pandas with a missing value arrive as floats
    assert hash_ids(pa.array([5.0, None, float("nan")])).tolist() == [ref_int_key(5), 0, 0]
    with pytest.raises(ValueError, match="not an integer"):
        hash_ids(pa.array([1.5]))
    assert hash_id(7) == ref_int_key(7)
    assert hash_id(None) == 0
    with pytest.raises(TypeError):
        hash_id(1.0)  # type: ignore[arg-type]


def test_hash_spreads_sequential_ids() -> None:
    ids = [f"job-{i}" for i in range(200_000)]
    keys = hash_ids(ids)
    assert len(np.unique(keys)) == len(ids)
    # low bits look uniform: 256 buckets of ~781, none far off
    counts = np.bincount(keys & 0xFF, minlength=256)
    assert counts.min() > 600 and counts.max() < 1000


# --------------------------------------------------------------------------------------------------
# Input types
# --------------------------------------------------------------------------------------------------

ROWS = {
    "ts": [T0, T0 + 1, T0 + 2],
    "endpoint": ["a", "b", "a"],
    "job_id": ["j1", "j2", "j1"],
    "state": ["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS"],
}


def _check_rows(batch: EventBatch, registry: EndpointRegistry) -> None:
    assert batch.ts.tolist() == [T0_US, T0_US + 1000, T0_US + 2000]
    assert [registry.name(c) for c in batch.endpoint.tolist()] == ["a", "b", "a"]
    assert batch.job.tolist() == [ref_hash("j1"), ref_hash("j2"), ref_hash("j1")]
    assert batch.state.tolist() == [JobState.IN_QUEUE, JobState.IN_QUEUE, JobState.IN_PROGRESS]
    assert batch.kind.tolist() == [Kind.JOB] * 3
    assert batch.worker.tolist() == [0, 0, 0]
    assert batch.status.tolist() == [-1, -1, -1]
    for name, dtype in [
        ("ts", np.int64),
        ("kind", np.int8),
        ("endpoint", np.int32),
        ("job", np.int64),
        ("state", np.int8),
        ("worker", np.int64),
        ("status", np.int32),
    ]:
        assert getattr(batch, name).dtype == dtype


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: pa.table(ROWS), id="table"),
        pytest.param(lambda: pa.RecordBatch.from_pydict(ROWS), id="record_batch"),
        pytest.param(lambda: pd.DataFrame(ROWS), id="pandas"),
        pytest.param(lambda: ROWS, id="mapping_of_lists"),
        pytest.param(lambda: {k: np.array(v) for k, v in ROWS.items()}, id="mapping_of_numpy"),
        pytest.param(lambda: {k: pa.array(v) for k, v in ROWS.items()}, id="mapping_of_arrow"),
        pytest.param(lambda: {k: pd.Series(v) for k, v in ROWS.items()}, id="mapping_of_series"),
        pytest.param(
            lambda: pa.Table.from_batches(
                [
                    pa.RecordBatch.from_pydict({k: v[:1] for k, v in ROWS.items()}),
                    pa.RecordBatch.from_pydict({k: v[1:] for k, v in ROWS.items()}),
                ]
            ),
            id="chunked_table",
        ),
        pytest.param(lambda: pa.table({k: [None, *v] for k, v in ROWS.items()}).slice(1), id="sliced_table"),
        pytest.param(
            lambda: pa.table(
                {
                    **ROWS,
                    "endpoint": pa.array(ROWS["endpoint"]).dictionary_encode(),
                    "state": pa.array(ROWS["state"]).dictionary_encode(),
                    "job_id": pa.array(ROWS["job_id"], pa.large_string()),
                }
            ),
            id="dictionary_columns",
        ),
    ],
)
def test_input_types(make: object) -> None:
    registry = EndpointRegistry()
    batch, rejected = normalize(make(), registry)  # type: ignore[operator]
    _check_rows(batch, registry)
    assert rejected.total == 0


def test_pandas_specific_dtypes() -> None:
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime([T0, T0 + 1, T0 + 2], unit="ms", utc=True),
            "endpoint": pd.Categorical(ROWS["endpoint"]),
            "job_id": ROWS["job_id"],
            "state": pd.Categorical(ROWS["state"]),
            "note": ["ignored", None, "x"],
        }
    )
    registry = EndpointRegistry()
    batch, _ = normalize(df, registry)
    _check_rows(batch, registry)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="pyarrow Table"):
        normalize([1, 2, 3], EndpointRegistry())
    with pytest.raises(ValueError, match="equal lengths"):
        normalize({"ts": [1, 2], "endpoint": ["a"]}, EndpointRegistry())
    with pytest.raises(TypeError, match="column 'job_id'"):
        normalize({**ROWS, "job_id": [True, False, True]}, EndpointRegistry())
    with pytest.raises(TypeError, match="column 'ts'"):
        normalize({**ROWS, "ts": [True, False, True]}, EndpointRegistry())


def test_numeric_text_status_codes_and_integer_endpoints() -> None:
    data = {
        "ts": [T0, T0],
        "kind": ["webhook", "webhook"],
        "endpoint": pa.array([7, 7], pa.int64()),
        "job_id": ["j", "j"],
        "status_code": ["200", "503"],
    }
    registry = EndpointRegistry()
    batch, _ = normalize(data, registry)
    assert batch.status.tolist() == [200, 503]
    assert registry.names() == ["7"]
    with pytest.raises(TypeError, match="column 'status_code'"):
        normalize({**data, "status_code": ["ok", "200"]}, EndpointRegistry())
    with pytest.raises(TypeError, match="column 'endpoint'"):
        normalize({**data, "endpoint": [1.5, 2.5]}, EndpointRegistry())


def test_empty_input() -> None:
    batch, rejected = normalize(pa.table({k: pa.array([], pa.string()) for k in ROWS}), EndpointRegistry())
    assert len(batch) == 0 and rejected.total == 0
    batch, _ = normalize({"ts": [], "endpoint": []}, EndpointRegistry())
    assert len(batch) == 0


# --------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------


def _ts(values: object, typ: pa.DataType | None = None) -> tuple[list[int], Rejections]:
    arr = pa.array(values, typ) if not isinstance(values, pa.Array) else values
    n = len(arr)
    batch, rejected = normalize(
        {"ts": arr, "endpoint": ["e"] * n, "job_id": ["j"] * n, "state": ["IN_QUEUE"] * n},
        EndpointRegistry(),
    )
    return batch.ts.tolist(), rejected


@pytest.mark.parametrize(("unit", "scale"), [("s", 1_000_000), ("ms", 1000), ("us", 1), ("ns", None)])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_timestamp_units(unit: str, scale: int | None, tz: str | None) -> None:
    raw = [1_700_000_000, -3, 0, 1_700_000_000_123]
    got, rejected = _ts(pa.array(raw, pa.timestamp(unit, tz)))
    expected = [v // 1000 for v in raw] if scale is None else [v * scale for v in raw]
    assert got == expected  # ns is floored: -3 ns is -1 us
    assert rejected.total == 0


def test_numeric_epoch_milliseconds() -> None:
    assert _ts([T0, -1], pa.int64())[0] == [T0_US, -1000]
    assert _ts([1000], pa.int32())[0] == [1_000_000]
    assert _ts([1000], pa.uint16())[0] == [1_000_000]
    got, _ = _ts([1.0006, 1.0004, -0.0004, T0 + 0.25], pa.float64())
    assert got == [1000 + 1, 1000, 0, T0_US + 250]  # rounded to the microsecond
    got, rejected = _ts([float("nan"), float("inf"), 1e300, 5.0, None], pa.float64())
    assert got == [5000]
    assert rejected.by_reason == {"unparsable ts": 2, "ts out of range": 1, "null ts": 1}
    got, rejected = _ts([2**63 - 1, 7, 2**60], pa.int64())
    assert got == [7000]
    assert rejected.by_reason == {"ts out of range": 2}
    got, rejected = _ts([2**64 - 1, 7], pa.uint64())
    assert got == [7000] and rejected.by_reason == {"ts out of range": 1}


def _iso_us(text: str) -> int:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


ISO_CASES = [
    ("2024-01-02T03:04:05", None),
    ("2024-01-02 03:04:05", None),
    ("2024-01-02T03:04:05.5", None),
    ("2024-01-02T03:04:05.123456", None),
    ("2024-01-02T03:04:05.123456789", 1704164645123456),  # ns digits floored
    ("2024-01-02T03:04:05Z", None),
    ("2024-01-02T03:04:05.25Z", None),
    ("2024-01-02T03:04:05+02:00", None),
    ("2024-01-02 03:04:05.7-05:30", None),
    ("2024-01-02T03:04:05+0130", 1704159245000000),
    ("2024-01-02T03:04", None),
    ("2024-01-02", None),
    ("  2024-01-02T03:04:05Z ", None),
    ("1969-12-31T23:59:59.9999999", -1),  # before the epoch: floor, not truncation
    ("2300-06-01T00:00:00", None),  # outside Arrow's nanosecond range
    ("2024-02-29t12:00:00,25z", 1709208000250000),  # lower case, decimal comma
    ("2000-02-29T00:00-01", 951786000000000),
    ("9999-12-31T23:59:59.999999+23:59", None),
    ("0001-01-01", None),
]


@pytest.mark.parametrize(("text", "expected"), ISO_CASES)
def test_iso_strings_alone(text: str, expected: int | None) -> None:
    want = _iso_us(text) if expected is None else expected
    got, rejected = _ts([text])
    assert got == [want]
    assert rejected.total == 0


def test_iso_strings_mixed_with_bad_rows() -> None:
    good = [text for text, _ in ISO_CASES]
    want = [_iso_us(t) if e is None else e for t, e in ISO_CASES]
    bad = ["garbage", "", "2024-13-01T00:00:00", "2024-02-30", "2024-01-02T24:00:00", None]
    bad += ["2024-01-02T03:04:60", "2024-01-02T03:04:05+25:00", "2024-1-2"]
    values = bad[:3] + good + bad[3:]
    got, rejected = _ts(values * 40)  # enough rows to bisect
    assert got == want * 40
    assert rejected.by_reason == {"unparsable ts": 8 * 40, "null ts": 40}
    # same through a dictionary
    got, _ = _ts(pa.array(values, pa.string()).dictionary_encode())
    assert got == want


def test_iso_homogeneous_fast_path_and_nulls() -> None:
    base = datetime(2024, 5, 6, 7, 8, 9, 123000)
    texts = [(base + timedelta(seconds=i)).isoformat() for i in range(50)] + [None]
    got, rejected = _ts(texts)
    assert got == [_iso_us(t) for t in texts if t is not None]
    assert rejected.by_reason == {"null ts": 1}
    zoned = [(base + timedelta(seconds=i)).isoformat() + "Z" for i in range(50)]
    assert _ts(zoned, pa.large_string())[0] == [_iso_us(t) for t in zoned]


ISO_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})"
    r"(?:[.,]([0-9]+))?)?)?(Z|z|[+-][0-9]{2}(?:[0-9]{2}|:[0-9]{2})?)?)?"
)


def ref_iso(text: str) -> int | None:
    """Reference parser of the documented ISO-8601 grammar (regex + datetime)."""
    m = ISO_RE.fullmatch(text.strip(" \t\n\r\x0b\x0c"))
    if m is None:
        return None
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    year, shift = int(y), 0
    if year < 400:  # year 0 is valid ISO (1 BC): move by 400 years, which have a fixed length
        year, shift = year + 400, 146_097
    try:
        day = date(year, int(mo), int(d)).toordinal() - shift
    except ValueError:
        return None
    h, minute, sec = int(hh or 0), int(mi or 0), int(ss or 0)
    if h > 23 or minute > 59 or sec > 59:
        return None
    offset = 0
    if zone and zone not in "Zz":
        zh, zm = int(zone[1:3]), int(zone[-2:]) if len(zone) > 3 else 0
        if zh > 23 or zm > 59:
            return None
        offset = (1 if zone[0] == "+" else -1) * (zh * 60 + zm) * 60_000_000
    micros = int((frac or "")[:6].ljust(6, "0"))
    days = day - date(1970, 1, 1).toordinal()
    return (((days * 24 + h) * 60 + minute) * 60 + sec) * 1_000_000 + micros - offset


def _parse_all(texts: list[str | None]) -> list[int | None]:
    n = len(texts)
    batch, rejected = normalize(
        {"ts": pa.array(texts, pa.string()), "endpoint": ["e"] * n, "job_id": ["j"] * n,
         "state": ["IN_QUEUE"] * n},
        EndpointRegistry(),
    )  # fmt: skip
    it = iter(batch.ts.tolist())
    dropped = {s.row for s in rejected.samples}
    assert rejected.total == len(dropped)
    return [None if i in dropped else next(it) for i in range(n)]


datetimes = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30))
zones = st.sampled_from(["", "Z", "z", "+00:00", "-05:30", "+0945", "-11", "+23:59"])


@settings(fast, max_examples=100)
@given(
    st.lists(
        st.tuples(datetimes, st.sampled_from("Tt "), st.integers(0, 4), st.integers(0, 12), zones),
        min_size=1,
        max_size=15,
    )
)
def test_iso_kernel_matches_reference_on_valid_strings(
    parts: list[tuple[datetime, str, int, int, str]],
) -> None:
    texts: list[str | None] = []
    for dt, sep, precision, frac_digits, zone in parts:
        text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
        if precision > 0:  # 1: HH, 2: HH:MM, 3: HH:MM:SS, 4: HH:MM:SS.f*
            fields = [f"{dt.hour:02d}", f"{dt.minute:02d}", f"{dt.second:02d}"][: min(precision, 3)]
            text += sep + ":".join(fields)
            if precision == 4 and frac_digits:
                text += "." + (f"{dt.microsecond:06d}" + "123456")[:frac_digits]
            text += zone
        texts.append(text)
    expected = [ref_iso(t) for t in texts]  # type: ignore[arg-type]
    assert None not in expected
    assert _parse_all(texts) == expected


@settings(fast, max_examples=150)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([t for t, _ in ISO_CASES]),
            st.integers(0, 40),
            st.text("0123456789-:+.,TtZz x\t", max_size=3),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_iso_kernel_matches_reference_on_mutated_strings(
    parts: list[tuple[str, int, str, int]],
) -> None:
    texts: list[str | None] = []
    for text, at, insert, delete in parts:
        at = min(at, len(text))
        texts.append(text[:at] + insert + text[at + delete :])
    assert _parse_all(texts) == [ref_iso(t) for t in texts]  # type: ignore[arg-type]


def test_python_datetimes_and_numpy_datetime64() -> None:
    aware = [datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))]
    assert _ts(aware)[0] == [_iso_us("2024-01-01T00:00:00")]
    assert _ts([datetime(2024, 1, 1)])[0] == [_iso_us("2024-01-01")]
    d64 = np.array(["2024-01-01T00:00:00.000001234"], dtype="datetime64[ns]")
    assert _ts(pa.array(d64))[0] == [_iso_us("2024-01-01") + 1]


# --------------------------------------------------------------------------------------------------
# Kinds and states
# --------------------------------------------------------------------------------------------------


def test_states_case_whitespace_and_aliases() -> None:
    data = {
        "ts": [T0] * 9,
        "kind": ["job", "JOB", " job", None, "worker", "Worker", "worker", "webhook", "job"],
        "endpoint": ["e"] * 9,
        "job_id": ["j"] * 5 + [None, None, "j", "j"],
        "state": [
            "in_queue",
            " Running ",
            "TIMED_OUT",
            "cancelled",
            "running",
            "initializing",
            " offline",
            None,
            "COMPLETED",
        ],
        "worker_id": [None, "w", None, None, "w", "w", "w", None, None],
        "status_code": [None] * 7 + [204, None],
    }
    batch, rejected = normalize(data, EndpointRegistry())
    assert rejected.total == 0
    assert batch.kind.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 0]
    assert batch.state.tolist() == [
        JobState.IN_QUEUE,
        JobState.IN_PROGRESS,  # RUNNING is an alias on job rows
        JobState.TIMED_OUT,
        JobState.CANCELLED,
        WorkerState.RUNNING,  # ... and a worker state on worker rows
        WorkerState.INITIALIZING,
        WorkerState.OFFLINE,
        0,
        JobState.COMPLETED,
    ]
    assert batch.status.tolist() == [-1] * 7 + [204, -1]
    assert batch.worker.tolist()[:2] == [0, ref_hash("w")]
    assert batch.job.tolist()[5:7] == [0, 0]


def test_state_of_the_other_kind_is_unknown() -> None:
    data = {
        "ts": [T0] * 4,
        "kind": ["job", "worker", "job", "worker"],
        "endpoint": ["e"] * 4,
        "job_id": ["j", None, "j", None],
        "state": ["IDLE", "IN_QUEUE", "IN_QUEUE", "IDLE"],
        "worker_id": [None, "w", None, "w"],
    }
    batch, rejected = normalize(data, EndpointRegistry())
    assert rejected.by_reason == {"unknown state": 2}
    assert batch.state.tolist() == [JobState.IN_QUEUE, WorkerState.IDLE]


def test_integer_kind_and_state_codes() -> None:
    data = {
        "ts": [T0] * 4,
        "kind": pa.array([0, 1, None, 7], pa.int8()),
        "endpoint": ["e"] * 4,
        "job_id": ["j", None, "j", "j"],
        "state": pa.array([2, 6, 9, None], pa.int8()),
        "worker_id": [None, "w", None, None],
    }
    batch, rejected = normalize(data, EndpointRegistry())
    assert batch.kind.tolist() == [0, 1] and batch.state.tolist() == [2, 6]
    assert rejected.by_reason == {"unknown state": 1, "unknown kind": 1}


# --------------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------------


def test_rejections_counts_samples_and_survivors() -> None:
    data = {
        "ts": [T0, None, T0 + 2, T0 + 3, T0 + 4, T0 + 5, T0 + 6, T0 + 7, T0 + 8, T0 + 9],
        "kind": ["job", "job", "robot", "job", "job", "worker", "webhook", "webhook", "job", "job"],
        "endpoint": ["a", "a", "a", None, "a", "a", "a", "a", "b", "a"],
        "job_id": ["j0", "j1", "j2", "j3", None, None, "j6", "j7", "j8", "j9"],
        "state": ["IN_QUEUE", "x", "x", "x", "x", "IN_QUEUE", None, None, "nope", "FAILED"],
        "worker_id": ["w"] * 10,
        "status_code": pa.array([None] * 6 + [None, 1000, None, None], pa.int64()),
    }
    registry = EndpointRegistry()
    batch, rejected = normalize(data, registry, batch_number=3)
    assert batch.ts.tolist() == [T0_US, T0_US + 9000]
    assert batch.job.tolist() == [ref_hash("j0"), ref_hash("j9")]
    assert rejected.total == 8
    assert rejected.by_reason == {
        "unknown kind": 1,
        "null ts": 1,
        "null endpoint": 1,
        "null job_id": 1,
        "unknown state": 2,
        "null status_code": 1,
        "invalid status_code": 1,
    }
    assert [(s.batch, s.row, s.column, s.reason, s.value) for s in rejected.samples] == [
        (3, 1, "ts", "null ts", "null"),
        (3, 2, "kind", "unknown kind", "robot"),
        (3, 3, "endpoint", "null endpoint", "null"),
        (3, 4, "job_id", "null job_id", "null"),
        (3, 5, "state", "unknown state", "IN_QUEUE"),
        (3, 6, "status_code", "null status_code", "null"),
        (3, 7, "status_code", "invalid status_code", "1000"),
        (3, 8, "state", "unknown state", "nope"),
    ]
    # "b" only appears on a rejected row: not registered
    assert registry.names() == ["a"]
    text = str(rejected)
    assert text.startswith("8 rows rejected")
    assert "unknown state" in text and "batch 3 row 7: invalid status_code" in text


def test_rejections_accumulate_across_batches() -> None:
    report = Rejections(max_samples=3)
    registry = EndpointRegistry()
    bad = {
        "ts": [None, T0],
        "endpoint": ["a", "a"],
        "job_id": ["j", None],
        "state": ["IN_QUEUE"] * 2,
    }
    for number in range(3):
        batch, out = normalize(bad, registry, rejections=report, batch_number=number)
        assert out is report and len(batch) == 0
    assert report.total == 6
    assert report.by_reason == {"null ts": 3, "null job_id": 3}
    assert [(s.batch, s.row) for s in report.samples] == [(0, 0), (0, 1), (1, 0)]
    other = Rejections(total=1, by_reason={"null ts": 1})
    assert report.merge(other).by_reason["null ts"] == 4 and report.total == 7
    assert str(Rejections()) == "no rows rejected"


def test_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"'ts'.*columns present: \['endpoint', 'job_id'"):
        normalize({"endpoint": ["a"], "job_id": ["j"], "state": ["IN_QUEUE"]}, EndpointRegistry())
    with pytest.raises(ValueError, match="'endpoint'"):
        normalize({"ts": [T0]}, EndpointRegistry())
    base = {"ts": [T0], "endpoint": ["a"]}
    with pytest.raises(ValueError, match=r"'job_id' \(job and webhook events\); 'state'"):
        normalize(base, EndpointRegistry())
    with pytest.raises(ValueError, match="'worker_id'"):
        normalize({**base, "kind": ["worker"], "state": ["IDLE"]}, EndpointRegistry())
    with pytest.raises(ValueError, match="'status_code'"):
        normalize({**base, "kind": ["webhook"], "job_id": ["j"]}, EndpointRegistry())
    # not needed when no row is of the kind that needs them; extra columns are ignored
    batch, _ = normalize(
        {**base, "kind": ["worker"], "state": ["IDLE"], "worker_id": ["w"], "x": [1]},
        EndpointRegistry(),
    )
    assert batch.job.tolist() == [0] and batch.worker.tolist() == [ref_hash("w")]
    batch, _ = normalize({**base, "kind": ["webhook"], "job_id": [7], "status_code": [0]}, EndpointRegistry())
    assert batch.state.tolist() == [0] and batch.status.tolist() == [0]
    assert batch.job.tolist() == [ref_int_key(7)]


# --------------------------------------------------------------------------------------------------
# Property: normalize == a row-by-row reference
# --------------------------------------------------------------------------------------------------

KINDS = [None, "job", "worker", "webhook", "Worker ", "bogus"]
STATES = [None, "IN_QUEUE", "running", " idle", "COMPLETED", "Unhealthy", "nope", "timed_out"]
ENDPOINTS = [None, "alpha", "beta", "gamma"]
IDS = [None, "j1", "j2", ""]


def _reference(row: dict[str, object]) -> tuple[tuple[int, ...] | None, str | None]:
    """One row -> the batch row it becomes, or the reason it is rejected."""
    kind_text = row["kind"]
    kind = (
        0
        if kind_text is None
        else {"job": 0, "worker": 1, "webhook": 2}.get(str(kind_text).strip().lower(), -1)
    )
    if kind < 0:
        return None, "unknown kind"
    if row["ts"] is None:
        return None, "null ts"
    if row["endpoint"] is None:
        return None, "null endpoint"
    if kind != 1 and row["job_id"] is None:
        return None, "null job_id"
    if kind == 1 and row["worker_id"] is None:
        return None, "null worker_id"
    state = 0
    if kind != 2:
        if row["state"] is None:
            return None, "null state"
        name = str(row["state"]).strip().upper()
        if kind == 0:
            name = "IN_PROGRESS" if name == "RUNNING" else name
            state = JobState[name] if name in JobState.__members__ else 0
        else:
            state = WorkerState[name] if name in WorkerState.__members__ else 0
        if state == 0:
            return None, "unknown state"
    status = -1
    if kind == 2:
        if row["status_code"] is None:
            return None, "null status_code"
        status = int(row["status_code"])  # type: ignore[call-overload]
    return (
        int(row["ts"]) * 1000,  # type: ignore[call-overload]
        kind,
        ref_hash(row["job_id"]),  # type: ignore[arg-type]
        state,
        ref_hash(row["worker_id"]),  # type: ignore[arg-type]
        status,
    ), None


row_strategy = st.fixed_dictionaries(
    {
        "ts": st.one_of(st.none(), st.integers(-(10**12), 10**13)),
        "kind": st.sampled_from(KINDS),
        "endpoint": st.sampled_from(ENDPOINTS),
        "job_id": st.sampled_from(IDS),
        "state": st.sampled_from(STATES),
        "worker_id": st.sampled_from(IDS),
        "status_code": st.one_of(st.none(), st.integers(0, 599)),
    }
)


@settings(fast, max_examples=150)
@given(st.lists(st.lists(row_strategy, max_size=25), min_size=1, max_size=3), st.booleans())
def test_normalize_matches_row_by_row_reference(
    batches: list[list[dict[str, object]]], dictionary: bool
) -> None:
    registry = EndpointRegistry()
    report = Rejections()
    seen: list[str] = []
    for number, rows in enumerate(batches):
        columns = {
            name: pa.array([r[name] for r in rows], pa.int64() if name == "ts" else pa.string())
            for name in ("ts", "kind", "endpoint", "job_id", "state", "worker_id")
        }
        columns["status_code"] = pa.array([r["status_code"] for r in rows], pa.int64())
        if dictionary:
            columns = {
                k: v.dictionary_encode() if k in ("endpoint", "state", "kind") else v
                for k, v in columns.items()
            }
        batch, _ = normalize(columns, registry, rejections=report, batch_number=number)
        expected = [_reference(r) for r in rows]
        kept = [(e, r) for (e, _), r in zip(expected, rows, strict=True) if e is not None]
        got = list(
            zip(
                batch.ts.tolist(),
                batch.kind.tolist(),
                batch.job.tolist(),
                batch.state.tolist(),
                batch.worker.tolist(),
                batch.status.tolist(),
                strict=True,
            )
        )
        assert got == [e for e, _ in kept]
        # new endpoints are registered in order of first appearance in the batch, if kept
        used = {r["endpoint"] for _, r in kept}
        for r in rows:
            if r["endpoint"] in used and r["endpoint"] not in seen:
                seen.append(r["endpoint"])  # type: ignore[arg-type]
        assert [registry.name(c) for c in batch.endpoint.tolist()] == [r["endpoint"] for _, r in kept]
    assert registry.names() == seen
    reasons = [why for rows in batches for _, why in map(_reference, rows) if why is not None]
    assert report.total == len(reasons)
    assert report.by_reason == Counter(reasons)


# --------------------------------------------------------------------------------------------------
# Endpoint registry and EventBatch
# --------------------------------------------------------------------------------------------------


def test_registry_persists_across_batches_and_pickles() -> None:
    registry = EndpointRegistry()
    first, _ = normalize({**ROWS, "endpoint": ["b", "a", "b"]}, registry)
    second, _ = normalize({**ROWS, "endpoint": ["c", "a", "b"]}, registry)
    assert first.endpoint.tolist() == [0, 1, 0]
    assert second.endpoint.tolist() == [2, 1, 0]
    assert registry.names() == ["b", "a", "c"] and len(registry) == 3
    clone = pickle.loads(pickle.dumps(registry))
    assert clone == registry and clone.code("c") == 2 and clone.code("d") == 3
    assert "d" not in registry and registry.get("d") is None and registry.get("a") == 1
    with pytest.raises(KeyError):
        registry.name(3)
    assert repr(registry) == "EndpointRegistry(['b', 'a', 'c'])"


def test_registry_codes() -> None:
    registry = EndpointRegistry(["x"])
    values = pa.chunked_array(
        [pa.array(["y", None, "x"]), pa.array([], pa.string()), pa.array(["z", "y", None])]
    )
    codes = registry.codes(values)
    assert codes.dtype == np.int32
    assert codes.tolist() == [1, -1, 0, 2, 1, -1]
    dictionary = pa.chunked_array(
        [
            pa.array(["q", "y", "q", "z"]).dictionary_encode(),
            pa.array(["x", None]).dictionary_encode(),
        ]
    )
    assert registry.codes(dictionary).tolist() == [3, 1, 3, 2, 0, -1]
    assert registry.names() == ["x", "y", "z", "q"]
    assert registry.codes(["z", "w"]).tolist() == [2, 4]
    assert registry.codes(pa.array(["a", "b", "c"]).slice(1)).tolist() == [5, 6]


def test_one_dictionary_chunk_with_nulls_repeats_and_unused_entries() -> None:
    """A single dictionary chunk (what Parquet readers give): null rows, a dictionary that repeats
    a value and holds one no row uses. Only used names are registered; rows rejected for another
    reason do not register theirs."""
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array([0, None, 2, 1, 0, 3], pa.int32()), pa.array(["b", "a", "b", "c", "unused"])
    )
    registry = EndpointRegistry()
    assert registry.codes(dictionary).tolist() == [0, -1, 0, 1, 0, 2]
    assert registry.names() == ["b", "a", "c"]

    table = pa.table(
        {
            "ts": [1, 2, 3, 4],
            "endpoint": pa.DictionaryArray.from_arrays(
                pa.array([0, 1, None, 3], pa.int32()), pa.array(["sd", "llm", "never", "sd"])
            ),
            "job_id": ["j1", "j2", "j3", "j4"],
            "state": ["IN_QUEUE", "EXPLODED", "IN_QUEUE", "IN_QUEUE"],
        }
    )
    registry = EndpointRegistry()
    batch, _ = normalize(table, registry)
    assert registry.names() == ["sd"]  # llm's only row has a bad state, "never" no row at all
    assert batch.endpoint.tolist() == [0, 0]


def test_event_batch_helpers() -> None:
    empty = EventBatch.empty()
    assert len(empty) == 0 and empty.ts.dtype == np.int64
    batch, _ = normalize(ROWS, EndpointRegistry())
    both = EventBatch.concat([batch, EventBatch.empty(), batch.take(np.array([2]))])
    assert len(both) == 4
    assert both.ts.tolist() == [*batch.ts.tolist(), batch.ts[2]]
    assert EventBatch.concat([]).ts.shape == (0,)
    masked = batch.take(np.array([True, False, True]))
    assert masked.state.tolist() == [1, 2]
    with pytest.raises(ValueError, match="equal lengths"):
        EventBatch(
            ts=[1, 2],
            kind=[0],
            endpoint=[0],
            job=[1],
            state=[1],
            worker=[0],
            status=[-1],  # type: ignore[arg-type]
        )
