"""aggregate_logs: formats, directories and globs, order-exact mode, endpoint filter, rejected rows
with their line numbers, strict mode, missing input, atomic Parquet output."""

from __future__ import annotations

import doctest
import gzip
import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import jobmetrics
from jobmetrics import Aggregator, aggregate_logs
from jobmetrics.batch import MAX_JOB_CAPACITY, MalformedInputError, Progress, job_capacity_for, run
from jobmetrics.io import LogReadError, Source, discover, read_batches
from streams import BASE_MS, synthetic_events

FORMATS = ("parquet", "arrow", "jsonl", "csv", "jsonl.gz", "csv.gz")


def _workers_and_webhooks() -> pa.Table:
    """A few worker and webhook events (cold starts, deliveries) for endpoint ep-00."""
    t0 = BASE_MS + 500
    rows: list[dict[str, Any]] = []
    for w in range(3):
        base = t0 + 20_000 * w
        rows += [
            {
                "ts": base,
                "kind": "worker",
                "endpoint": "ep-00",
                "worker_id": f"w{w}",
                "state": "INITIALIZING",
            },
            {
                "ts": base + 7_000 + w,
                "kind": "worker",
                "endpoint": "ep-00",
                "worker_id": f"w{w}",
                "state": "IDLE",
            },
            {
                "ts": base + 9_000,
                "kind": "worker",
                "endpoint": "ep-00",
                "worker_id": f"w{w}",
                "state": "RUNNING",
            },
        ]
    for k, code in enumerate((200, 204, 500, 0, 200)):
        rows.append({"ts": t0 + 3_000 * k, "kind": "webhook", "endpoint": "ep-00", "job_id": f"job-{k:06d}",
                     "status_code": code})  # fmt: skip
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [("ts", pa.int64()), ("kind", pa.string()), ("endpoint", pa.string()), ("job_id", pa.string()),
             ("state", pa.string()), ("worker_id", pa.string()), ("status_code", pa.int64())]
        ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def log() -> pa.Table:
    """About 9 000 job events over three endpoints, with worker and webhook events, time-sorted."""
    jobs = synthetic_events(3000, n_endpoints=3, seed=7, rate_per_s=20.0)
    jobs = jobs.append_column("worker_id", pa.nulls(jobs.num_rows, pa.string()))
    jobs = jobs.append_column("status_code", pa.nulls(jobs.num_rows, pa.int64()))
    table = pa.concat_tables([jobs, _workers_and_webhooks()])
    return table.take(pc.sort_indices(table, [("ts", "ascending")]))


def write_log(table: pa.Table, path: Path) -> Path:
    """``table`` written to ``path`` in the format its name says."""
    name = path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        pq.write_table(table, path, row_group_size=2000)
    elif name.endswith(".arrow"):
        feather.write_feather(table, path, chunksize=2000)
    elif ".jsonl" in name:
        text = "".join(
            json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in table.to_pylist()
        )
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    elif ".csv" in name:
        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
        data = sink.getvalue().to_pybytes()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    else:
        raise ValueError(name)
    return path


def direct(table: pa.Table, **options: Any) -> pa.Table:
    """The snapshot of one Aggregator fed ``table`` in one call."""
    agg = Aggregator(**options)
    agg.ingest(table)
    agg.flush()
    return agg.snapshot()


# -- formats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_snapshot(tmp_path: Path, log: pa.Table, fmt: str) -> None:
    path = write_log(log, tmp_path / f"events.{fmt}")
    result = run(path, batch_size=1500)
    expected = direct(log)
    assert result.table.equals(expected, check_metadata=True)
    s = result.summary
    assert s.events_read == log.num_rows
    assert s.rejected == 0 and s.late_events == 0
    assert result.table.num_rows > 10
    assert sum(result.table.column("webhook_requests").to_pylist()) == 5
    assert sum(result.table.column("cold_start_count").to_pylist()) == 3


def test_iso_timestamps_in_text_formats(tmp_path: Path, log: pa.Table) -> None:
    ms = log.column("ts").to_numpy()
    iso = pc.strftime(pa.array(ms * 1000, type=pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%SZ")
    text = log.set_column(0, "ts", iso)
    expected = direct(log)
    for name in ("iso.jsonl", "iso.csv"):
        assert aggregate_logs(write_log(text, tmp_path / name)).equals(expected)


def test_mixed_timestamp_text_in_one_csv_column(tmp_path: Path, log: pa.Table) -> None:
    """Epoch milliseconds and ISO-8601 text in the same CSV column both count."""
    ms = log.column("ts").to_numpy()
    iso = pc.strftime(pa.array(ms * 1000, type=pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%SZ")
    mixed = pa.array([iso[i].as_py() if i % 3 == 0 else str(ms[i]) for i in range(len(ms))])
    path = write_log(log.set_column(0, "ts", mixed), tmp_path / "mixed.csv")
    assert aggregate_logs(path).equals(direct(log))


def test_read_batches_bounds_the_batch_size(tmp_path: Path, log: pa.Table) -> None:
    for fmt in ("parquet", "arrow", "csv", "jsonl"):
        source = discover(write_log(log, tmp_path / f"e.{fmt}"))[0]
        chunks = list(read_batches(source, batch_size=1000))
        assert len(chunks) >= log.num_rows // 1000
        assert max(c.data.num_rows for c in chunks) <= 1000
        assert sum(c.data.num_rows for c in chunks) == log.num_rows
        firsts = [c.first for c in chunks]
        offset = 2 if fmt == "csv" else 1  # CSV lines count the header as line 1
        assert firsts == list(np.cumsum([0] + [c.data.num_rows for c in chunks[:-1]]) + offset)
        assert chunks[-1].position == source.size


# -- order -----------------------------------------------------------------------------------------


def test_exact_order_on_shuffled_input_equals_sorted_input(tmp_path: Path, log: pa.Table) -> None:
    rng = np.random.default_rng(3)
    shuffled = log.take(pa.array(rng.permutation(log.num_rows)))
    for k, part in enumerate(np.array_split(np.arange(shuffled.num_rows), 3)):
        write_log(shuffled.take(pa.array(part)), tmp_path / "shuffled" / f"part-{k}.parquet")
    write_log(log, tmp_path / "sorted.parquet")

    exact = aggregate_logs(tmp_path / "shuffled", exact_order=True, batch_size=777)
    assert exact.equals(aggregate_logs(tmp_path / "sorted.parquet"))
    assert exact.equals(direct(log, allowed_lateness=None))
    assert aggregate_logs(tmp_path / "shuffled", allowed_lateness=None, batch_size=777).equals(exact)
    # the same files in streaming mode lose most events as late: the shuffle matters
    streaming = run(tmp_path / "shuffled", batch_size=777).summary
    assert streaming.late_events > log.num_rows // 2


def test_exact_order_counts_rejected_rows(tmp_path: Path, log: pa.Table) -> None:
    bad = log.set_column(4, "state", pc.if_else(pc.equal(pc.add(pa.array(np.arange(log.num_rows)), 0), 10),
                                                pa.scalar("NOPE"), log.column("state")))  # fmt: skip
    path = write_log(bad, tmp_path / "bad.jsonl")
    result = run(path, exact_order=True)
    assert result.summary.invalid_rows == 1
    assert [(s.number, s.reason, s.value) for s in result.summary.samples] == [(11, "unknown state", "NOPE")]


# -- inputs ----------------------------------------------------------------------------------------


def test_directories_globs_and_file_lists(tmp_path: Path, log: pa.Table) -> None:
    n = log.num_rows
    cuts = [0, n // 3, 2 * n // 3, n]
    root = tmp_path / "logs"
    files = [
        write_log(log.slice(cuts[0], cuts[1] - cuts[0]), root / "2023" / "a.parquet"),
        write_log(log.slice(cuts[1], cuts[2] - cuts[1]), root / "2023" / "b.jsonl"),
        write_log(log.slice(cuts[2], cuts[3] - cuts[2]), root / "2024" / "c.csv"),
    ]
    (root / "_SUCCESS").write_text("")
    (root / ".c.csv.swp").write_text("garbage")
    (root / "2024" / "README.txt").write_text("not a log")
    assert [s.path for s in discover(root)] == files

    expected = direct(log)
    assert aggregate_logs(root).equals(expected)
    assert aggregate_logs(str(root / "**" / "*.*")).equals(expected)
    assert aggregate_logs([str(f) for f in files]).equals(expected)
    # a directory named twice (and a file inside it) is read once
    assert aggregate_logs([root, files[0]]).equals(expected)


def test_endpoint_filter(tmp_path: Path, log: pa.Table) -> None:
    path = write_log(log, tmp_path / "e.parquet")
    result = run(path, endpoints=["ep-01"])
    mask = pc.equal(log.column("endpoint"), "ep-01")
    assert result.table.equals(direct(log.filter(mask)))
    assert set(result.table.column("endpoint").to_pylist()) == {"ep-01"}
    assert result.summary.filtered_out == log.num_rows - pc.sum(mask).as_py()
    patterned = aggregate_logs(path, endpoints=["ep-0[12]"])
    kept = pc.is_in(log.column("endpoint"), pa.array(["ep-01", "ep-02"]))
    assert patterned.equals(direct(log.filter(kept)))
    assert aggregate_logs(path, endpoints=["nothing-*"]).num_rows == 0


def test_missing_and_unreadable_inputs_are_clear_errors(tmp_path: Path, log: pa.Table) -> None:
    with pytest.raises(FileNotFoundError, match=r"input not found: .*nope\.parquet"):
        aggregate_logs(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError, match="no log file matches"):
        aggregate_logs(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no log files"):
        aggregate_logs(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes.txt: unknown log format"):
        aggregate_logs(tmp_path / "notes.txt")
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(LogReadError, match=r"broken.parquet as Parquet"):
        aggregate_logs(tmp_path / "broken.parquet")
    (tmp_path / "array.json").write_text('[{"ts": 1}]\n')
    with pytest.raises(LogReadError, match="JSON array"):
        aggregate_logs(tmp_path / "array.json")
    # a missing input fails before the readable ones are read
    good = write_log(log, tmp_path / "good.parquet")
    with pytest.raises(FileNotFoundError):
        aggregate_logs([good, tmp_path / "nope.csv"])


# -- bad rows --------------------------------------------------------------------------------------


def _with_bad_lines(log: pa.Table, tmp_path: Path, fmt: str) -> tuple[Path, pa.Table, dict[int, str]]:
    """The log as ``fmt`` text with bad lines inserted; the valid rows; line number -> reason."""
    n = log.num_rows
    bad_state = 100  # row with an unknown state
    bad_ts = 2000  # row with a null ts
    rows = log.to_pylist()
    rows[bad_state] = {**rows[bad_state], "state": "EXPLODED"}
    rows[bad_ts] = {**rows[bad_ts], "ts": None}
    if fmt == "jsonl":
        lines = [json.dumps({k: v for k, v in r.items() if v is not None}) for r in rows]
        header = 0
    else:
        sink = pa.BufferOutputStream()
        pcsv.write_csv(pa.Table.from_pylist(rows, schema=log.schema), sink)
        lines = sink.getvalue().to_pybytes().decode().splitlines()
        header = 1
    # line number of data row i before insertions: i + 1 + header
    inserted = {
        50: "{not json" if fmt == "jsonl" else "too,few",
        4000: "[1, 2]" if fmt == "jsonl" else "a,b,c,d,e,f,g,h",
    }
    expected: dict[int, str] = {}
    out: list[str] = []
    data_row = 0
    for i, line in enumerate(lines):
        if i >= header:
            if data_row in inserted:
                out.append(inserted[data_row])
                expected[len(out)] = "bad line"
            if data_row in (bad_state, bad_ts):
                expected[len(out) + 1] = "unknown state" if data_row == bad_state else "null ts"
            data_row += 1
        out.append(line)
    path = tmp_path / f"bad.{fmt}"
    path.write_text("\n".join(out) + "\n")
    keep = np.ones(n, dtype=bool)
    keep[[bad_state, bad_ts]] = False
    return path, log.filter(pa.array(keep)), expected


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_bad_rows_are_counted_with_line_numbers_and_the_rest_applied(
    tmp_path: Path, log: pa.Table, fmt: str
) -> None:
    path, valid, expected = _with_bad_lines(log, tmp_path, fmt)
    result = run(path, batch_size=1000)
    s = result.summary
    assert result.table.equals(direct(valid))
    assert s.malformed == 2 and s.invalid_rows == 2 and s.rejected == 4
    assert s.events_read == log.num_rows
    assert s.rejected_by_reason["unknown state"] == 1 and s.rejected_by_reason["null ts"] == 1
    found = {x.number: x for x in s.samples}
    assert set(found) == set(expected)
    for number, reason in expected.items():
        assert found[number].file == str(path) and found[number].unit == "line"
        if reason != "bad line":
            assert found[number].reason == reason
    assert found[min(k for k, v in expected.items() if v == "unknown state")].value == "EXPLODED"


def test_bad_rows_in_parquet_are_located_by_row(tmp_path: Path, log: pa.Table) -> None:
    state = log.column("state").to_pylist()
    state[4321] = "NOT_A_STATE"
    path = write_log(log.set_column(4, "state", pa.array(state)), tmp_path / "e.parquet")
    s = run(path, batch_size=1000).summary
    assert [(x.unit, x.number, x.reason, x.value) for x in s.samples] == [
        ("row", 4322, "unknown state", "NOT_A_STATE")
    ]
    assert str(s.samples[0]) == f"{path} row 4322: unknown state (state=NOT_A_STATE)"
    # with an endpoint filter, rows are still numbered as in the file
    s = run(path, batch_size=1000, endpoints=[log.column("endpoint")[4321].as_py()]).summary
    assert [x.number for x in s.samples] == [4322]


def test_a_file_missing_a_column_is_rejected_and_the_others_read(tmp_path: Path, log: pa.Table) -> None:
    good = write_log(log, tmp_path / "a.parquet")
    write_log(log.drop_columns(["endpoint"]).slice(0, 100), tmp_path / "b.parquet")
    result = run(tmp_path)
    assert result.table.equals(direct(log))
    assert result.summary.invalid_rows == 100
    assert result.summary.samples[0].reason == "unusable batch"
    assert "endpoint" in result.summary.samples[0].value
    assert good.exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_strict_stops_at_the_first_bad_line(tmp_path: Path, log: pa.Table, fmt: str) -> None:
    path, _, expected = _with_bad_lines(log, tmp_path, fmt)
    out = tmp_path / "out.parquet"
    with pytest.raises(MalformedInputError) as info:
        aggregate_logs(path, out, strict=True, batch_size=1000)
    first = min(expected)
    assert info.value.rejection.number == first
    assert f"{path}:{first}:" in str(info.value)
    assert not out.exists()


def test_strict_stops_at_a_rejected_row(tmp_path: Path, log: pa.Table) -> None:
    state = log.column("state").to_pylist()
    state[10] = None
    path = write_log(log.set_column(4, "state", pa.array(state)), tmp_path / "e.parquet")
    with pytest.raises(MalformedInputError, match=r"row 11: null state"):
        aggregate_logs(path, strict=True)
    assert aggregate_logs(path).num_rows > 0  # not strict: the row is counted and skipped


# -- output ----------------------------------------------------------------------------------------


def test_output_is_written_atomically(tmp_path: Path, log: pa.Table) -> None:
    path = write_log(log, tmp_path / "e.parquet")
    out = tmp_path / "out" / "snapshot.parquet"
    table = aggregate_logs(path, out)
    back = pq.read_table(out)
    assert back.equals(table)
    assert back.schema.metadata == table.schema.metadata
    assert jobmetrics.rollup(back, every="1h").num_rows > 0  # the metadata survives the round trip
    assert sorted(os.listdir(out.parent)) == ["snapshot.parquet"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)


def test_a_failed_write_leaves_no_file(
    tmp_path: Path, log: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_log(log, tmp_path / "e.parquet")
    out = tmp_path / "out" / "snapshot.parquet"
    parquet_io = importlib.import_module("jobmetrics.io.parquet")

    def half_then_fail(table: pa.Table, where: Any, **_: Any) -> None:
        where.write(b"PAR1" + b"\0" * 1000)  # part of a file, then the process is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(parquet_io.pq, "write_table", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        aggregate_logs(path, out)
    assert os.listdir(out.parent) == []

    # an existing output survives a failed rewrite untouched
    monkeypatch.undo()
    aggregate_logs(path, out)
    before = out.read_bytes()
    monkeypatch.setattr(parquet_io.pq, "write_table", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        aggregate_logs(path, out, window="10s")
    assert out.read_bytes() == before
    assert os.listdir(out.parent) == ["snapshot.parquet"]


def test_an_unwritable_output_fails_before_reading(tmp_path: Path, log: pa.Table) -> None:
    path = write_log(log, tmp_path / "e.parquet")
    (tmp_path / "dir.parquet").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        aggregate_logs(path, tmp_path / "dir.parquet")


# -- progress --------------------------------------------------------------------------------------


def test_progress_callback(tmp_path: Path, log: pa.Table) -> None:
    root = tmp_path / "logs"
    write_log(log.slice(0, 4000), root / "a.parquet")
    write_log(log.slice(4000), root / "b.csv")
    seen: list[Progress] = []
    aggregate_logs(root, tmp_path / "out.parquet", progress=seen.append, batch_size=500)
    reading = [p for p in seen if p.phase == "reading"]
    assert len(reading) >= log.num_rows // 500
    done = [p.bytes_done for p in seen]
    assert done == sorted(done)
    assert [p.events for p in reading] == sorted(p.events for p in reading)
    last = seen[-1]
    assert last.phase == "done" and last.bytes_done == last.bytes_total == sum(
        f.stat().st_size for f in root.iterdir()
    )
    assert last.events == log.num_rows and last.files_done == last.files_total == 2
    assert "writing" in {p.phase for p in seen}


def test_progress_bar_renders(tmp_path: Path, log: pa.Table, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(log, tmp_path / "e.parquet")
    aggregate_logs(path, progress=True)
    err = capsys.readouterr().err
    assert "events/s" in err and f"{log.num_rows:,} events" in err


# -- docs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jobmetrics.batch", "jobmetrics.io.readers", "jobmetrics.io.parquet"])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_format_option_reads_any_extension(tmp_path: Path, log: pa.Table) -> None:
    path = write_log(log, tmp_path / "events.jsonl").rename(tmp_path / "events.log")
    with pytest.raises(ValueError, match=r"events.log: unknown log format"):
        aggregate_logs(path)
    assert aggregate_logs(path, format="jsonl").equals(direct(log))
    with pytest.raises(ValueError, match="format must be one of"):
        aggregate_logs(path, format="xml")


def test_job_table_is_sized_from_the_input(tmp_path: Path, log: pa.Table) -> None:
    parquet = discover(write_log(log, tmp_path / "e.parquet"))
    assert job_capacity_for(parquet) == max(log.num_rows // 3, 1024)
    big = [Source(Path("x.csv"), "csv", False, 10**12)]
    assert job_capacity_for(big) == MAX_JOB_CAPACITY
    assert job_capacity_for([Source(Path("x.csv"), "csv", False, 10)]) == 1024


def test_empty_files_and_crlf_lines(tmp_path: Path) -> None:
    lines = [
        '{"ts": 1700000000000, "endpoint": "e", "job_id": "a", "state": "IN_QUEUE"}',
        '{"ts": 1700000000500, "endpoint": "e", "job_id": "a", "state": "IN_PROGRESS"}',
        '{"ts": 1700000001000, "endpoint": "e", "job_id": "a", "state": "COMPLETED"}',
    ]
    (tmp_path / "crlf.jsonl").write_bytes("\r\n".join(lines).encode())  # no final line break either
    for name in ("empty.csv", "empty.parquet", "empty.jsonl"):
        (tmp_path / name).write_bytes(b"")
    result = run(tmp_path)
    assert result.summary.events_read == 3 and result.summary.rejected == 0
    assert result.table.column("completed").to_pylist() == [1]
    assert result.table.column("execution_time_count").to_pylist() == [1]
    assert run(tmp_path / "empty.csv").table.num_rows == 0


def test_arrow_ipc_stream_format(tmp_path: Path, log: pa.Table) -> None:
    path = tmp_path / "events.arrows.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, log.schema) as writer:
        writer.write_table(log, max_chunksize=3000)
    result = run(path, batch_size=1000)
    assert result.table.equals(direct(log))
    assert result.summary.events_read == log.num_rows


def test_json_lines_whose_types_clash_are_read_one_by_one(tmp_path: Path) -> None:
    """ts as a number on some lines and as text on others (Arrow refuses the block), one line longer
    than Arrow's default block, and a bad line: every good line is read, in order."""
    lines = []
    for i in range(40):
        ts: object = BASE_MS + 1000 * i
        if i % 3 == 0:
            ts = pc.strftime(pa.array([ts * 1000], type=pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%SZ")[
                0
            ].as_py()
        row = {
            "ts": ts,
            "endpoint": "e",
            "job_id": f"j{i // 3}",
            "state": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"][i % 3],
        }
        if i == 7:
            row["note"] = "x" * (2 << 20)
        lines.append(json.dumps(row))
    lines.insert(20, "{broken")
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run(path)
    s = result.summary
    assert s.events_read == 40 and s.malformed == 1
    assert [(x.number, x.reason) for x in s.samples] == [(21, "not JSON")]
    totals = {c: sum(result.table.column(c).to_pylist()) for c in ("requests", "completed", "orphans")}
    assert totals == {"requests": 14, "completed": 13, "orphans": 0}
