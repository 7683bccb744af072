"""The report model (exact re-aggregation of a snapshot over an interval), its terminal view, the
charts and the HTML page."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from jobmetrics import Aggregator, HdrHistogram, rollup
from jobmetrics.report import model, terminal
from streams import BASE_MS, synthetic_events

WINDOW_MS = 60_000


def _events() -> pa.Table:
    """Ten minutes of jobs on three endpoints, plus workers and webhooks on ``ep-00``."""
    jobs = synthetic_events(3_000, seed=7, n_endpoints=3, rate_per_s=5.0)
    t0 = BASE_MS
    extra = []
    for k in range(6):  # a worker starting every 90 s, each ready after 5 + k seconds
        start = t0 + 30_000 + k * 90_000
        extra += [
            (start, "worker", "ep-00", None, "INITIALIZING", f"w{k}", None),
            (start + 5_000 + 1000 * k, "worker", "ep-00", None, "IDLE", f"w{k}", None),
            (start + 20_000, "worker", "ep-00", None, "RUNNING", f"w{k}", None),
        ]
    for k in range(40):
        extra.append(
            (t0 + 10_000 * k, "webhook", "ep-00", f"job-{k:06d}", None, None, 500 if k % 8 == 0 else 200)
        )
    cols = list(zip(*extra, strict=True))
    more = pa.table(
        {
            "ts": pa.array(cols[0], pa.int64()),
            "kind": pa.array(cols[1], pa.string()),
            "endpoint": pa.array(cols[2], pa.string()),
            "job_id": pa.array(cols[3], pa.string()),
            "state": pa.array(cols[4], pa.string()),
            "worker_id": pa.array(cols[5], pa.string()),
            "status_code": pa.array(cols[6], pa.int32()),
        }
    )
    jobs = jobs.append_column("worker_id", pa.nulls(jobs.num_rows, pa.string()))
    jobs = jobs.append_column("status_code", pa.nulls(jobs.num_rows, pa.int32()))
    both = pa.concat_tables([jobs, more])
    return both.take(pc.sort_indices(both, [("ts", "ascending")]))


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return _events()


@pytest.fixture(scope="module")
def aggregator(events: pa.Table) -> Aggregator:
    agg = Aggregator(window="60s", allowed_lateness="0s")
    agg.ingest(events)
    agg.flush()
    return agg


@pytest.fixture(scope="module")
def snapshot(aggregator: Aggregator) -> pa.Table:
    return aggregator.snapshot()


def _column(table: pa.Table, name: str, endpoint: str) -> list[object]:
    rows = table.filter(pc.equal(table.column("endpoint"), endpoint))
    return list(rows.column(name).to_pylist())


def test_all_equals_aggregating_at_the_coarse_grain(events: pa.Table, snapshot: pa.Table) -> None:
    """Over all windows, every counter and percentile equals what one window of a day gives."""
    report = model.build_report(snapshot, interval="all")
    day = Aggregator(window="1d", allowed_lateness="0s")
    day.ingest(events)
    day.flush()
    coarse = day.snapshot()
    assert [f.endpoint for f in report.endpoints] == ["ep-00", "ep-01", "ep-02"]
    assert [q for q, _ in report.quantiles] == ["p70", "p90", "p98"]
    for f in report.endpoints:
        for c in model.JOB_COUNTERS:
            assert f.counters[c] == _column(coarse, c, f.endpoint)[0], c
        for m in model.DURATION_METRICS:
            d = f.durations[m]
            assert d.count == _column(coarse, f"{m}_count", f.endpoint)[0]
            for label in ("p70", "p90", "p98"):
                assert d.quantiles[label] == _column(coarse, f"{m}_{label}_ms", f.endpoint)[0]
            assert d.max_ms == _column(coarse, f"{m}_max_ms", f.endpoint)[0]
            assert d.min_ms == _column(coarse, f"{m}_min_ms", f.endpoint)[0]
        assert f.in_queue == _column(coarse, "in_queue", f.endpoint)[0]
        assert f.in_progress == _column(coarse, "in_progress", f.endpoint)[0]
    ep0 = report.endpoints[0]
    assert ep0.counters["cold_start_count"] == 6
    assert ep0.durations["cold_start_time"].count == 6
    assert ep0.counters["webhook_requests"] == 40
    assert ep0.counters["webhook_failed"] == 5
    assert ep0.webhook_success_rate == pytest.approx(35 / 40)
    assert ep0.workers["running"][1] == _column(coarse, "workers_running_max", "ep-00")[0]
    assert ep0.counters["requests"] > 0
    assert report.endpoints[1].durations["cold_start_time"].count == 0
    assert report.endpoints[1].durations["cold_start_time"].quantiles["p90"] is None


def test_percentiles_come_from_the_merged_histogram_not_an_average(snapshot: pa.Table) -> None:
    report = model.build_report(snapshot, interval="all", endpoints=["ep-01"])
    blobs = [b for b in _column(snapshot, "execution_time_hdr", "ep-01") if b is not None]
    merged = HdrHistogram.merged(HdrHistogram.decode(b) for b in blobs)  # type: ignore[arg-type]
    d = report.endpoints[0].durations["execution_time"]
    assert d.quantiles["p90"] == merged.value_at_quantile(0.9) / 1000
    assert d.count == merged.total_count == sum(_column(snapshot, "execution_time_count", "ep-01"))  # type: ignore[arg-type]
    averaged = np.nanmean(np.array(_column(snapshot, "execution_time_p90_ms", "ep-01"), dtype=float))
    assert d.quantiles["p90"] != pytest.approx(averaged, rel=1e-6)


def test_last_window_is_the_latest_row(snapshot: pa.Table) -> None:
    report = model.build_report(snapshot, interval="last")
    latest = pc.max(snapshot.column("window_start")).as_py()
    rows = snapshot.filter(pc.equal(snapshot.column("window_start"), pa.scalar(latest)))
    assert report.rows.num_rows == rows.num_rows
    for f in report.endpoints:
        assert f.counters["completed"] == _column(rows, "completed", f.endpoint)[0]
        assert (
            f.durations["execution_time"].quantiles["p98"]
            == _column(rows, "execution_time_p98_ms", f.endpoint)[0]
        )


def test_a_duration_interval_matches_the_aggregators_sliding_query(
    aggregator: Aggregator, snapshot: pa.Table
) -> None:
    report = model.build_report(snapshot, interval="5m")
    assert report.rows.num_rows > 0
    starts = set(report.rows.column("window_start").to_pylist())
    assert len(starts) == 5
    for f in report.endpoints:
        live = aggregator.metrics(f.endpoint, last="5m")
        for c in ("requests", "completed", "failed", "retried", "cancelled"):
            assert f.counters[c] == live[c], c
        for m in ("execution_time", "delay_time"):
            assert f.durations[m].count == live[f"{m}_count"]
            for label in ("p70", "p90", "p98"):
                assert f.durations[m].quantiles[label] == live[f"{m}_{label}_ms"]


def test_worker_averages_are_time_weighted_over_the_interval(snapshot: pa.Table) -> None:
    report = model.build_report(snapshot, interval="all", endpoints=["ep-00"])
    span_us = (report.end - report.start).total_seconds() * 1e6
    f = report.endpoints[0]
    for state in ("initializing", "idle", "running"):
        integral = sum(_column(snapshot, f"workers_{state}_us", "ep-00"))  # type: ignore[arg-type]
        assert f.workers[state][0] == pytest.approx(integral / span_us)
    assert f.workers["running"][0] > 0
    assert f.workers["initializing"][1] == 1


def test_unknown_endpoint_and_bad_interval_are_named(snapshot: pa.Table) -> None:
    with pytest.raises(ValueError, match=r"'nope'.*'ep-00'"):
        model.build_report(snapshot, endpoints=["nope"])
    with pytest.raises(ValueError, match="interval"):
        model.build_report(snapshot, interval="soon")


def test_missing_columns_are_named(tmp_path: Path, snapshot: pa.Table) -> None:
    path = tmp_path / "partial.parquet"
    pq.write_table(snapshot.drop_columns(["requests", "delay_time_hdr"]), path)
    with pytest.raises(model.SnapshotError, match=r"requests.*delay_time_hdr|delay_time_hdr.*requests"):
        model.load_snapshot(path)
    with pytest.raises(model.SnapshotError, match="not found"):
        model.load_snapshot(tmp_path / "absent.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(model.SnapshotError, match="not a readable Parquet"):
        model.load_snapshot(junk)


def test_series_rolls_up_exactly(snapshot: pa.Table) -> None:
    report = model.build_report(snapshot, interval="all")
    coarse = model.series(report, max_points=3)
    assert coarse.num_rows < snapshot.num_rows
    assert pc.sum(coarse.column("requests")).as_py() == pc.sum(snapshot.column("requests")).as_py()
    width = pc.min(
        pc.subtract(
            pc.cast(coarse.column("window_end"), pa.int64()),
            pc.cast(coarse.column("window_start"), pa.int64()),
        )
    ).as_py()
    direct = rollup(snapshot, every=width)
    assert coarse.column("execution_time_p90_ms").equals(direct.column("execution_time_p90_ms"))
    assert model.series(report).num_rows == snapshot.num_rows  # few windows: drawn as they are


def test_terminal_shows_the_figures(snapshot: pa.Table) -> None:
    report = model.build_report(snapshot, interval="all")
    buf = io.StringIO()
    terminal.render(report, Console(file=buf, width=100, color_system=None))
    text = buf.getvalue()
    for f in report.endpoints:
        assert f.endpoint in text
        assert terminal.format_count(f.counters["requests"]) in text
        for label in ("p70", "p90", "p98"):
            assert terminal.format_ms(f.durations["execution_time"].quantiles[label]) in text
    assert "Cold start" in text and "Webhooks: 40 sent, 35 ok, 5 failed (87.5% ok)" in text
    assert re.search(r"rows of 1m windows", text)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (0.5, "0.50 ms"),
        (412.46, "412.5 ms"),
        (2310.0, "2.31 s"),
        (252_000.0, "4.2 min"),
        (5_400_000.0, "1.50 h"),
        (983_232_000.0, "11.38 d"),
    ],
)
def test_format_ms(ms: float | None, text: str) -> None:
    assert terminal.format_ms(ms) == text


def test_png_is_a_valid_image(tmp_path: Path, snapshot: pa.Table) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    from jobmetrics.report import plot

    report = model.build_report(snapshot, interval="all")
    path = tmp_path / "charts.png"
    plot.write_png(report, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] > 600 and image.shape[1] > 1000
    assert float(image[..., :3].std()) > 0.05  # not a blank canvas


def test_html_is_self_contained(tmp_path: Path, snapshot: pa.Table) -> None:
    pytest.importorskip("matplotlib")
    from jobmetrics.report import html

    report = model.build_report(snapshot, interval="all")
    path = tmp_path / "report.html"
    html.write_html(report, path)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert page.count("data:image/png;base64,") == 3
    assert page.count('<table class="latency">') == 3
    for f in report.endpoints:
        assert f">{f.endpoint}</h2>" in page
        assert f"<td>{terminal.format_count(f.counters['completed'])}</td>" in page
        assert f"<td>{terminal.format_ms(f.durations['delay_time'].quantiles['p90'])}</td>" in page
    assert "<style>" in page
    assert '<a href="#endpoint-ep-01">ep-01</a>' in page and 'id="endpoint-ep-01"' in page


def test_html_without_charts_needs_no_matplotlib(snapshot: pa.Table) -> None:
    from jobmetrics.report import html

    page = html.render_html(model.build_report(snapshot, interval="last"), charts=False)
    assert "data:image" not in page and "<table" in page


def test_snapshots_of_several_sources_add_up(events: pa.Table) -> None:
    """Jobs split by endpoint over two aggregators: the concatenated snapshots report as one."""
    whole = Aggregator(window="60s", allowed_lateness="0s")
    whole.ingest(events)
    whole.flush()
    parts = []
    for group in (["ep-00"], ["ep-01", "ep-02"]):
        agg = Aggregator(window="60s", allowed_lateness="0s")
        agg.ingest(events.filter(pc.is_in(events.column("endpoint"), pa.array(group))))
        agg.flush()
        parts.append(agg.snapshot())
    one = model.build_report(whole.snapshot(), interval="all")
    both = model.build_report(pa.concat_tables(parts), interval="all")
    for a, b in zip(one.endpoints, both.endpoints, strict=True):
        assert a.counters == b.counters
        assert a.in_queue == b.in_queue and a.in_progress == b.in_progress
        for m in model.DURATION_METRICS:
            assert a.durations[m].quantiles == b.durations[m].quantiles
        assert {s: w[1] for s, w in a.workers.items()} == {s: w[1] for s, w in b.workers.items()}


def test_gauges_of_one_window_from_two_sources_add(snapshot: pa.Table) -> None:
    ep = snapshot.filter(pc.equal(snapshot.column("endpoint"), "ep-00"))
    single = model.build_report(ep, interval="all").endpoints[0]
    double = model.build_report(pa.concat_tables([ep, ep]), interval="all").endpoints[0]
    assert double.counters["requests"] == 2 * single.counters["requests"]
    assert double.durations["execution_time"].count == 2 * single.durations["execution_time"].count
    assert double.durations["execution_time"].quantiles == single.durations["execution_time"].quantiles
    assert double.in_progress == 2 * single.in_progress
    assert double.workers["running"][1] == 2 * single.workers["running"][1]


def test_configured_quantiles_are_reported(events: pa.Table) -> None:
    agg = Aggregator(window="60s", allowed_lateness="0s", quantiles=(0.5, 0.99, 0.999))
    agg.ingest(events)
    agg.flush()
    report = model.build_report(agg.snapshot(), interval="all", endpoints=["ep-02"])
    assert [label for label, _ in report.quantiles] == ["p50", "p99", "p99_9"]
    merged = agg.histogram("ep-02", "delay_time")
    assert (
        report.endpoints[0].durations["delay_time"].quantiles["p99_9"]
        == merged.value_at_quantile(0.999) / 1000
    )
    buf = io.StringIO()
    terminal.render(report, Console(file=buf, width=100, color_system=None))
    assert "P99.9" in buf.getvalue() and "P70" not in buf.getvalue()


def test_empty_snapshot(snapshot: pa.Table) -> None:
    report = model.build_report(snapshot.slice(0, 0), interval="1h")
    assert report.endpoints == ()
    buf = io.StringIO()
    terminal.render(report, Console(file=buf, width=100, color_system=None))
    assert "No rows in this interval." in buf.getvalue()


def test_docstring_examples() -> None:
    import doctest
    import importlib

    module = importlib.import_module("jobmetrics.report.model")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_names_with_brackets_print_as_written() -> None:
    agg = Aggregator(window="60s", allowed_lateness="0s")
    for ts, state in ((0, "IN_QUEUE"), (400, "IN_PROGRESS"), (2_900, "COMPLETED")):
        agg.record(ts=ts, endpoint="sd[xl]", job_id="a", state=state)
    agg.flush()
    buf = io.StringIO()
    terminal.render(model.build_report(agg.snapshot(), source="[bold]x"), Console(file=buf, width=100))
    assert "sd[xl]" in buf.getvalue() and "[bold]x" in buf.getvalue()
