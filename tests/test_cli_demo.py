"""``jobmetrics demo``: simulate, aggregate and report, through the real command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from click.testing import CliRunner

from jobmetrics import HdrHistogram
from jobmetrics.cli import main
from jobmetrics.report.terminal import format_count, format_ms

ENDPOINTS = ("llm", "sdxl", "whisper")


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env={"COLUMNS": "100"})
    return result.exit_code, result.output


def test_keep_writes_the_files_and_the_report_matches_them(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    code, out = _run(["demo", "--seed", "3", "--duration", "10m", "--keep", str(folder)])
    assert code == 0, out
    events = pq.read_table(folder / "events.parquet")
    snapshot = pq.read_table(folder / "snapshot.parquet")
    assert events.num_rows > 0 and snapshot.num_rows > 0
    assert sorted(set(snapshot.column("endpoint").to_pylist())) == list(ENDPOINTS)
    assert f"jobmetrics report {folder / 'snapshot.parquet'}" in out.replace("\n", "")
    for endpoint in ENDPOINTS:
        rows = snapshot.filter(pc.equal(snapshot.column("endpoint"), endpoint))
        start = out.index(f"╭─ {endpoint} ")
        part = out[start : out.find("╰", start)]
        requests = pc.sum(rows.column("requests")).as_py()
        completed = pc.sum(rows.column("completed")).as_py()
        assert re.search(rf"{re.escape(format_count(requests))}\s+{re.escape(format_count(completed))}", part)
        blobs = [b for b in rows.column("execution_time_hdr").to_pylist() if b is not None]
        merged = HdrHistogram.merged(HdrHistogram.decode(b) for b in blobs)
        execution = next(line for line in part.splitlines() if "Execution" in line)
        assert format_ms(merged.value_at_quantile(0.9) / 1000) in execution
        cold = next(line for line in part.splitlines() if "Cold start" in line)
        assert format_count(pc.sum(rows.column("cold_start_count")).as_py()) in cold


def test_same_seed_same_report(tmp_path: Path) -> None:
    first = _run(["demo", "--seed", "5", "--duration", "5m"])
    second = _run(["demo", "--seed", "5", "--duration", "5m"])
    other = _run(["demo", "--seed", "6", "--duration", "5m"])

    def tables(out: str) -> str:
        return out[out.index("╭") : out.rindex("╯")]

    assert first[0] == second[0] == other[0] == 0
    assert tables(first[1]) == tables(second[1])
    assert tables(first[1]) != tables(other[1])
    assert "temporary directory" in first[1] and "--keep DIR" in first[1]


def test_bad_options(tmp_path: Path) -> None:
    code, out = _run(["demo", "--duration", "soon"])
    assert code == 2 and "--duration" in out
    code, out = _run(["demo", "--seed", "-1"])
    assert code == 2 and "--seed" in out
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _run(["demo", "--duration", "1m", "--keep", str(blocker / "sub")])
    assert code == 1 and "cannot create" in out


def test_default_demo_in_a_subprocess() -> None:
    """The README's first command: an hour of three endpoints, well under a minute."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from jobmetrics.cli import main; main()", "demo"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    for endpoint in ENDPOINTS:
        assert endpoint in done.stdout
    assert "Simulated 1h of llm, sdxl, whisper" in done.stderr
    assert elapsed < 60, f"jobmetrics demo took {elapsed:.1f} s"
