"""``jobmetrics report`` through the real command: click's runner and one subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobmetrics import Aggregator, HdrHistogram
from jobmetrics.cli import main
from jobmetrics.report.terminal import format_count, format_ms
from streams import synthetic_events


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    agg = Aggregator(window="60s", allowed_lateness="0s")
    agg.ingest(synthetic_events(2_000, seed=3, n_endpoints=2, rate_per_s=4.0))
    agg.flush()
    path = tmp_path_factory.mktemp("report") / "snapshot.parquet"
    pq.write_table(agg.snapshot(), path)
    return path


def _merged(table: pa.Table, endpoint: str, metric: str) -> HdrHistogram:
    rows = table.filter(pc.equal(table.column("endpoint"), endpoint))
    blobs = [b for b in rows.column(f"{metric}_hdr").to_pylist() if b is not None]
    return HdrHistogram.merged(HdrHistogram.decode(b) for b in blobs)


def _section(text: str, endpoint: str) -> str:
    """The part of the output from ``endpoint``'s panel title to the next panel."""
    start = text.index(endpoint)
    nxt = text.find("╭", start)
    return text[start : nxt if nxt > 0 else len(text)]


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env={"COLUMNS": "100"})
    return result.exit_code, result.output


def test_printed_numbers_are_the_reaggregated_snapshot(snapshot_file: Path) -> None:
    table = pq.read_table(snapshot_file)
    code, out = _run(["report", str(snapshot_file)])
    assert code == 0, out
    for endpoint in ("ep-00", "ep-01"):
        part = _section(out, endpoint)
        rows = table.filter(pc.equal(table.column("endpoint"), endpoint))
        requests = pc.sum(rows.column("requests")).as_py()
        completed = pc.sum(rows.column("completed")).as_py()
        numbers = re.findall(r"^.*\d.*$", part, flags=re.M)
        request_row = next(line for line in numbers if format_count(completed) in line)
        assert request_row.split()[1:3] == [format_count(requests), format_count(completed)]
        execution = next(line for line in part.splitlines() if "Execution" in line)
        merged = _merged(table, endpoint, "execution_time")
        p90 = format_ms(merged.value_at_quantile(0.9) / 1000)
        p98 = format_ms(merged.value_at_quantile(0.98) / 1000)
        assert f"{format_count(merged.total_count)} " in execution
        assert p90 in execution and p98 in execution
        delay = next(line for line in part.splitlines() if "Delay" in line)
        assert format_ms(_merged(table, endpoint, "delay_time").value_at_quantile(0.7) / 1000) in delay


def test_endpoint_filter_and_interval(snapshot_file: Path) -> None:
    code, out = _run(["report", str(snapshot_file), "--endpoint", "ep-01", "--interval", "last"])
    assert code == 0, out
    assert "ep-01" in out and "ep-00" not in out
    assert "latest window" in out
    code, out = _run(["report", str(snapshot_file), "--endpoint", "ep-0*"])
    assert code == 0 and "ep-00" in out and "ep-01" in out
    code, out = _run(["report", str(snapshot_file), "--interval", "10m"])
    assert code == 0, out
    assert "last 10m" in out


def test_plot_and_html(snapshot_file: Path, tmp_path: Path) -> None:
    png, page = tmp_path / "r.png", tmp_path / "r.html"
    code, out = _run(["report", str(snapshot_file), "--plot", str(png), "--html", str(page)])
    assert code == 0, out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text)
    assert text.count("<table") == 6  # requests, latency, workers for each of two endpoints
    assert f"Charts written to {png}" in out.replace("\n", "")


def test_missing_file(tmp_path: Path) -> None:
    code, out = _run(["report", str(tmp_path / "nothing.parquet")])
    assert code == 1
    assert "snapshot file not found" in out and "nothing.parquet" in out


def test_parquet_without_snapshot_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"ts": [1, 2], "endpoint": ["a", "b"], "state": ["IN_QUEUE", "IN_QUEUE"]}), path)
    code, out = _run(["report", str(path)])
    assert code == 1
    assert "missing column(s)" in out
    for name in ("window_start", "requests", "execution_time_hdr", "workers_idle_avg"):
        assert name in out


def test_not_parquet_and_bad_options(tmp_path: Path, snapshot_file: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("hello")
    code, out = _run(["report", str(path)])
    assert code == 1 and "not a readable Parquet file" in out
    code, out = _run(["report", str(snapshot_file), "--interval", "lately"])
    assert code == 2 and "--interval" in out
    code, out = _run(["report", str(snapshot_file), "--endpoint", "gpu-99"])
    assert code == 1 and "'gpu-99'" in out
    code, out = _run(["report", str(snapshot_file), "--html", str(tmp_path / "no" / "such" / "r.html")])
    assert code == 1 and "cannot write" in out and "does not exist" in out and "Requests" not in out


def test_subprocess(snapshot_file: Path) -> None:
    env = {**os.environ, "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", "from jobmetrics.cli import main; main()", "report", str(snapshot_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(snapshot_file)
    total = pc.sum(table.column("requests")).as_py()
    shown = [int(m.replace(",", "")) for m in re.findall(r"^\s*│?\s*([\d,]+)\s{2,}[\d,]+", done.stdout, re.M)]
    assert sum(shown) == total
    missing = subprocess.run(
        [sys.executable, "-c", "from jobmetrics.cli import main; main()", "report", "absent.parquet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 1
    assert "snapshot file not found: absent.parquet" in missing.stderr
