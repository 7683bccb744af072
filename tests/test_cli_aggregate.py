"""``jobmetrics aggregate`` through click's runner and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobmetrics import aggregate_logs
from jobmetrics.cli import main
from streams import synthetic_events


@pytest.fixture(scope="module")
def log() -> pa.Table:
    return synthetic_events(1500, n_endpoints=3, seed=11, rate_per_s=20.0)


@pytest.fixture()
def log_file(tmp_path: Path, log: pa.Table) -> Path:
    path = tmp_path / "events.parquet"
    pq.write_table(log, path)
    return path


def invoke(*args: str | os.PathLike[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["aggregate", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def test_aggregate_writes_the_snapshot_and_a_summary(tmp_path: Path, log: pa.Table, log_file: Path) -> None:
    out = tmp_path / "out" / "snapshot.parquet"
    code, output = invoke(log_file, "-o", out, "--no-progress")
    assert code == 0, output
    written = pq.read_table(out)
    assert written.equals(aggregate_logs(log_file))
    assert f"{log.num_rows:,}" in output
    for label in ("events read", "rows rejected", "late events", "invalid transitions", "events/s"):
        assert label in output
    assert f"snapshot written to {out}" in output


def test_options_reach_the_aggregator(tmp_path: Path, log_file: Path) -> None:
    out = tmp_path / "s.parquet"
    code, output = invoke(
        log_file, "-o", out, "--window", "10s", "-q", "0.5,0.999", "--significant-figures", "3",
        "-e", "ep-01", "--exact-order",
    )  # fmt: skip
    assert code == 0, output
    table = pq.read_table(out)
    expected = aggregate_logs(
        log_file,
        window="10s",
        quantiles=(0.5, 0.999),
        significant_figures=3,
        endpoints=["ep-01"],
        exact_order=True,
    )
    assert table.equals(expected)
    assert "execution_time_p99_9_ms" in table.column_names
    assert set(table.column("endpoint").to_pylist()) == {"ep-01"}
    assert "skipped (endpoint filter)" in output


def test_rejected_rows_are_listed_with_line_numbers(tmp_path: Path, log: pa.Table) -> None:
    rows = log.slice(0, 200).to_pylist()
    rows[19]["state"] = "NOT_A_STATE"
    lines = [json.dumps(r) for r in rows]
    lines[9] = "{oops"
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, output = invoke(path, "-o", tmp_path / "s.parquet")
    assert code == 0, output
    assert "first 2 of 2 rejected rows" in output
    assert f"{path}:10: not JSON" in output
    assert f"{path}:20: unknown state (state=NOT_A_STATE)" in output


def test_strict_exits_with_the_location(tmp_path: Path, log: pa.Table) -> None:
    lines = [json.dumps(r) for r in log.slice(0, 50).to_pylist()]
    lines[4] = "garbage"
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "s.parquet"
    code, output = invoke(path, "-o", out, "--strict")
    assert code == 1
    assert f"{path}:5: not JSON" in output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.parquet"], "input not found: missing.parquet"),
        (["nothing-*.csv"], "no log file matches"),
    ],
)
def test_missing_input_is_a_usage_error(
    tmp_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = invoke(*args, "-o", tmp_path / "s.parquet")
    assert code == 2
    assert message in output


def test_unreadable_input_and_bad_options(tmp_path: Path, log_file: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    code, output = invoke(broken, "-o", tmp_path / "s.parquet")
    assert code == 2 and "cannot read" in output and "broken.parquet" in output
    code, output = invoke(log_file, "-o", tmp_path / "s.parquet", "--window", "soon")
    assert code == 2 and "--window" in output
    code, output = invoke(log_file, "-o", tmp_path / "s.parquet", "-q", "0.5,2")
    assert code == 2 and "within [0, 1]" in output
    code, output = invoke(log_file)
    assert code == 2 and "--output" in output


def test_missing_dask_integration_is_explained(
    tmp_path: Path, log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jobmetrics.dask", None)  # as if the module could not be imported
    code, output = invoke(log_file, "-o", tmp_path / "s.parquet", "--dask", "local")
    assert code == 1
    assert "pip install 'jobmetrics[dask]'" in output


def test_real_process(tmp_path: Path, log: pa.Table) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    pq.write_table(log.slice(0, 2000), logs / "a.parquet")
    pq.write_table(log.slice(2000), logs / "b.parquet")
    out = tmp_path / "snapshot.parquet"
    exe = Path(sys.executable).with_name("jobmetrics")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from jobmetrics.cli import main; main()"]
    proc = subprocess.run(
        [*cmd, "aggregate", str(logs), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{log.num_rows:,}" in proc.stdout
    assert pq.read_table(out).equals(aggregate_logs(logs))
    proc = subprocess.run(
        [*cmd, "aggregate", str(tmp_path / "nope"), "-o", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "input not found" in proc.stderr


def test_allowed_lateness_none_is_the_exact_mode(tmp_path: Path, log: pa.Table) -> None:
    shuffled = log.take(pa.array(np.random.default_rng(5).permutation(log.num_rows)))
    path = tmp_path / "shuffled.parquet"
    pq.write_table(shuffled, path)
    out = tmp_path / "s.parquet"
    code, output = invoke(path, "-o", out, "--allowed-lateness", "none")
    assert code == 0, output
    written = pq.read_table(out)
    assert written.equals(aggregate_logs(path, exact_order=True))
    assert set(written.column("late_events").to_pylist()) == {0}
    assert written.equals(aggregate_logs(path)) is False  # streaming would count late events


def test_dask_refuses_options_it_cannot_honour(tmp_path: Path, log_file: Path) -> None:
    code, output = invoke(
        log_file, "-o", tmp_path / "s.parquet", "--dask", "local", "-e", "ep-01", "--strict"
    )
    assert code == 2
    assert "--endpoint and --strict cannot be used with --dask" in output


def test_lifecycle_options_reach_the_aggregator(tmp_path: Path) -> None:
    """A batch job that waits two days in the queue and runs for ten days: expired (twice: its
    later events come as adopted orphans) with the default TTL, and one whole job with a measured
    execution time with ``--job-ttl 30d --highest 30d`` (as long HPC traces need)."""
    day = 86_400_000
    events = pa.table(
        {
            "ts": pa.array([0, 2 * day, 12 * day, 12 * day + 1], pa.int64()),
            "endpoint": ["hpc"] * 4,
            "job_id": ["a", "a", "a", "b"],
            "state": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "IN_QUEUE"],
        }
    )
    log = tmp_path / "hpc.parquet"
    pq.write_table(events, log)

    def totals(*options: str) -> dict[str, int]:
        out = tmp_path / f"s{len(options)}.parquet"
        code, output = invoke(log, "-o", out, "--no-progress", "-w", "1d", *options)
        assert code == 0, output
        table = pq.read_table(out)
        names = ("completed", "expired", "orphans", "execution_time_count")
        return {name: sum(table.column(name).to_pylist()) for name in names}

    assert totals() == {"completed": 1, "expired": 2, "orphans": 2, "execution_time_count": 0}
    assert totals("--orphans", "drop")["completed"] == 0
    whole = {"completed": 1, "expired": 0, "orphans": 0, "execution_time_count": 1}
    assert totals("--job-ttl", "30d", "--highest", "30d") == whole
    code, output = invoke(log, "-o", tmp_path / "x.parquet", "--job-ttl", "soon")
    assert code == 2 and "job_ttl" in output
