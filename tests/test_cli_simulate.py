"""``jobmetrics simulate`` through the real command (click's runner, and once as a subprocess).

* every output format is written, and holds exactly the events of :func:`jobmetrics.simulate.simulate`
  with the same options (so the ground truth applies to the file);
* ``--truth`` writes the summary (JSON) or every duration (a table);
* the same seed writes the same bytes;
* bad options fail with exit code 2 and a message naming the bad value; nothing is written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobmetrics import Aggregator
from jobmetrics.cli import main
from jobmetrics.simulate import simulate


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)
    return result.exit_code, result.output


def read(path: Path) -> pa.Table:
    name = path.name
    if name.endswith((".parquet", ".pq")):
        return pq.read_table(path)
    if name.endswith((".arrow", ".feather", ".ipc")):
        with ipc.open_file(path) as f:
            return f.read_all()
    if name.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return pjson.read_json(path)
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))


def snapshot(table: pa.Table, lateness: str = "0s") -> pa.Table:
    agg = Aggregator(allowed_lateness=lateness)
    agg.ingest(table)
    agg.flush()
    return agg.snapshot()


@pytest.mark.parametrize(
    "name", ["log.parquet", "log.arrow", "log.feather", "log.jsonl", "log.csv", "log.jsonl.gz"]
)
def test_each_format(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    code, text = run(str(out), "-d", "5m", "-e", "llm,whisper", "-s", "4", "--no-progress")
    assert code == 0, text
    assert f"written to {out}" in text and "llm" in text and "whisper" in text
    expected = simulate("5m", "llm,whisper", seed=4)
    assert f"{expected.events.num_rows:,} events" in text
    back = read(out)
    assert back.num_rows == expected.events.num_rows
    if name.endswith((".parquet", ".arrow", ".feather")):
        assert back.equals(expected.events)
    assert snapshot(back).equals(snapshot(expected.events))


def test_format_option_wins_over_the_extension(tmp_path: Path) -> None:
    out = tmp_path / "events.log"
    code, text = run(str(out), "-d", "2m", "-e", "embed", "--format", "csv", "--ts-format", "ms")
    assert code == 0, text
    first = out.read_text().splitlines()[:2]
    assert first[0] == '"ts","kind","endpoint","job_id","state","worker_id","status_code"'
    assert first[1].split(",")[0].isdigit()  # epoch milliseconds


def test_disorder_duplicates_and_start(tmp_path: Path) -> None:
    out = tmp_path / "log.parquet"
    code, text = run(
        str(out), "-d", "10m", "-e", "three", "-s", "2", "--disorder", "2s", "--duplicates", "0.05",
        "--start", "2025-03-01T08:00:00Z",
    )  # fmt: skip
    assert code == 0, text
    expected = simulate("10m", "three", seed=2, disorder="2s", duplicates=0.05, start="2025-03-01T08:00:00Z")
    assert "disorder ≤ 2,000 ms" in text and f"{expected.truth.duplicates:,} duplicates" in text
    back = read(out)
    assert back.equals(expected.events)
    assert back["ts"][0].value // 1000 // 3600 % 24 == 8
    # within the bound, the shuffled file aggregates like the ordered events
    assert (
        snapshot(back, "2s")
        .drop_columns(["duplicates"])
        .equals(snapshot(expected.ordered_events, "2s").drop_columns(["duplicates"]))
    )


def test_truth_files(tmp_path: Path) -> None:
    summary = tmp_path / "truth.json"
    code, text = run(str(tmp_path / "log.parquet"), "-d", "5m", "-e", "sdxl", "--truth", str(summary))
    assert code == 0, text
    assert f"ground truth written to {summary}" in text
    expected = simulate("5m", "sdxl", seed=0)
    data = json.loads(summary.read_text())
    assert data == json.loads(expected.truth.to_json())
    assert data["endpoints"]["sdxl"]["requests"] == expected.truth["sdxl"].counters["requests"] > 0

    table_path = tmp_path / "durations.parquet"
    code, text = run(str(tmp_path / "log.csv"), "-d", "5m", "-e", "sdxl", "--truth", str(table_path))
    assert code == 0, text
    durations = pq.read_table(table_path)
    assert durations.column_names == ["endpoint", "metric", "ts", "value_ms"]
    truth = expected.truth["sdxl"]
    assert durations.num_rows == sum(v.size for v in truth.durations.values())
    assert sorted(durations.filter(pc.equal(durations["metric"], "delay_time"))["value_ms"].to_pylist()) == (
        sorted(truth.durations["delay_time"].tolist())
    )


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for path, seed in ((a, "7"), (b, "7"), (c, "8")):
        code, text = run(str(path), "-d", "3m", "-e", "llm", "-s", seed)
        assert code == 0, text
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_rate_scale(tmp_path: Path) -> None:
    out = tmp_path / "log.parquet"
    code, text = run(str(out), "-d", "3m", "-e", "embed", "--rate-scale", "2")
    assert code == 0, text
    assert pq.read_table(out).equals(simulate("3m", "embed", rate_scale=2.0).events)


def test_list_endpoints() -> None:
    code, text = run("--list-endpoints")
    assert code == 0
    for name in ("llm", "sdxl", "whisper", "embed", "three"):
        assert name in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log.txt"], "cannot tell the format of 'log.txt'"),
        (["log.parquet.gz"], "only JSON Lines and CSV can be gzip-compressed"),
        (["log.parquet", "-e", "gpt"], "unknown endpoint profile 'gpt'"),
        (["log.parquet", "-e", "llm,llm"], "endpoint names must be distinct"),
        (["log.parquet", "-d", "1y"], "got '1y'"),
        (["log.parquet", "-d", "0s"], "at least 1ms"),
        (["log.parquet", "--disorder", "lots"], "got 'lots'"),
        (["log.parquet", "--duplicates", "1.5"], "1.5 is not in the range"),
        (["log.parquet", "-s", "-1"], "-1 is not in the range"),
        (["log.parquet", "--format", "xml"], "'xml' is not one of"),
        (["log.parquet", "--start", "yesterday"], "'yesterday'"),
        (["log.parquet", "--truth", "truth.txt"], "cannot tell what to write to 'truth.txt'"),
        ([], "Missing argument 'OUTPUT'"),
    ],
)
def test_bad_options_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, text = run(*args)
    assert code == 2, text
    assert message in text
    assert list(tmp_path.iterdir()) == []


def test_output_is_a_directory(tmp_path: Path) -> None:
    code, text = run(str(tmp_path), "-d", "1m")
    assert code == 2
    assert "is a directory" in text


def test_console_script(tmp_path: Path) -> None:
    exe = shutil.which("jobmetrics", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = tmp_path / "log.jsonl"
    proc = subprocess.run(
        [exe, "simulate", str(out), "-d", "2m", "-e", "embed", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "written to" in proc.stdout
    assert read(out).num_rows == simulate("2m", "embed").events.num_rows
    bad = subprocess.run(
        [exe, "simulate", str(tmp_path / "x.parquet"), "-e", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "unknown endpoint profile 'nope'" in bad.stderr


def test_simulated_logs_aggregate_alike_in_every_format(tmp_path: Path) -> None:
    """simulate → aggregate through the commands: Parquet, JSON Lines and CSV of one run give the
    same snapshot, whose counters are the ground truth."""
    truth_path = tmp_path / "truth.json"
    snapshots = []
    for name in ("log.parquet", "log.jsonl", "log.csv"):
        log = tmp_path / name
        args = [str(log), "-d", "10m", "-e", "three", "-s", "5", "--disorder", "1s", "--duplicates", "0.02"]
        code, text = run(*args, "--truth", str(truth_path))
        assert code == 0, text
        out = tmp_path / f"{name}.snapshot.parquet"
        result = CliRunner().invoke(
            main,
            ["aggregate", str(log), "-o", str(out), "--allowed-lateness", "1s", "--no-progress"],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        snapshots.append(pq.read_table(out))
    assert snapshots[1].equals(snapshots[0]) and snapshots[2].equals(snapshots[0])
    truth = json.loads(truth_path.read_text())
    snap = snapshots[0]
    for name, expected in truth["endpoints"].items():
        rows = snap.filter(pc.equal(snap["endpoint"], name))
        for counter in ("requests", "completed", "failed", "cancelled", "timed_out", "retried", "duplicates"):
            assert pc.sum(rows[counter]).as_py() == expected[counter], (name, counter)
        for metric in ("execution_time", "delay_time", "cold_start_time"):
            assert pc.sum(rows[f"{metric}_count"]).as_py() == expected[metric]["count"]
