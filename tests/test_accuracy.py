"""The accuracy study of ``benchmarks/accuracy`` and its report (``python -m benchmarks.report``).

* the DDSketch-paper error measure on inputs small enough to check by hand;
* jobmetrics' HdrHistogram at 1, 2 and 3 significant figures stays within the relative-error bound
  its geometry documents (``Geometry.max_relative_error``) on every data set, fed at once and as
  merged partial histograms, at small sizes;
* the real-trace readers give the row counts and medians that ``shared/data/real/SOURCES.md`` lists;
* the report runs in ``--quick`` mode into a temporary folder and only touches its own section.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks package lives beside src/, not inside it
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.accuracy import QUANTILES, exact_bounds, relative_error, relative_errors  # noqa: E402
from benchmarks.accuracy.datasets import REAL_DIR, SYNTHETIC, Dataset, real_datasets, synthetic  # noqa: E402
from benchmarks.accuracy.sketches import JobmetricsAdapter, highest_for, make_sketches  # noqa: E402
from benchmarks.accuracy.study import run_dataset  # noqa: E402

from jobmetrics.geometry import Geometry  # noqa: E402


@pytest.fixture
def peers() -> None:
    """The peer sketches of the study (the ``bench`` extra)."""
    for module in ("hdrh.histogram", "ddsketch", "fastdigest", "tdigest"):
        pytest.importorskip(module)


# ------------------------------------------------------------------------------ the error measure


def test_exact_bounds_pick_the_order_statistics_around_q_times_n_minus_1() -> None:
    x = np.array([10, 20, 30, 40, 50])
    assert exact_bounds(x, 0.5) == (30.0, 30.0)  # q (n - 1) = 2
    assert exact_bounds(x, 0.1) == (10.0, 20.0)  # 0.4: between x[0] and x[1]
    assert exact_bounds(x, 0.9) == (40.0, 50.0)  # 3.6
    assert exact_bounds(x, 0.0) == (10.0, 10.0)
    assert exact_bounds(x, 1.0) == (50.0, 50.0)


def test_exact_bounds_take_q_as_the_decimal_it_is_written_as() -> None:
    # 0.1 * 1000 is 100.0000000000000055… with the binary double of 0.1; the definition means 100
    x = np.arange(1001) * 10
    assert exact_bounds(x, 0.1) == (1000.0, 1000.0)
    assert exact_bounds(x, 0.999) == (9990.0, 9990.0)
    y = np.arange(1000)
    assert exact_bounds(y, 0.7) == (699.0, 700.0)  # 0.7 * 999 = 699.3


def test_relative_error_is_zero_inside_and_relative_to_the_nearer_bound_outside() -> None:
    assert relative_error(25.0, 20.0, 30.0) == 0.0
    assert relative_error(20.0, 20.0, 30.0) == 0.0
    assert relative_error(33.0, 20.0, 30.0) == pytest.approx(0.1)
    assert relative_error(15.0, 20.0, 30.0) == pytest.approx(0.25)
    assert relative_error(0.0, 0.0, 0.0) == 0.0
    assert math.isinf(relative_error(1.0, 0.0, 0.0))
    assert math.isinf(relative_error(float("nan"), 1.0, 2.0))
    with pytest.raises(ValueError, match="lo must be <= hi"):
        relative_error(1.0, 3.0, 2.0)


def test_relative_errors_of_several_quantiles() -> None:
    x = np.array([1, 2, 3, 4, 5])
    got = relative_errors(x, [1.5, 3.3, 4.5], [0.1, 0.5, 0.9])
    np.testing.assert_allclose(got, [0.0, 0.1, 0.0])
    with pytest.raises(ValueError, match="2 estimates for 3 quantiles"):
        relative_errors(x, [1.0, 2.0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="quantile must be within"):
        exact_bounds(x, 1.5)
    with pytest.raises(ValueError, match="at least one value"):
        exact_bounds(np.array([]), 0.5)


# ------------------------------------------------------------------------------ data sets


def test_synthetic_sets_are_seeded_integer_microseconds() -> None:
    for name in SYNTHETIC:
        a, b = synthetic(name, 5000), synthetic(name, 5000)
        assert a.values.dtype == np.int64
        np.testing.assert_array_equal(a.values, b.values)
        assert a.values.min() >= 0
    lognormal = synthetic("lognormal", 100_000).values
    assert 190_000 < np.median(lognormal) < 210_000  # median 200 ms
    pareto = synthetic("pareto", 100_000).values
    assert pareto.min() >= 1000  # scale 1 ms
    assert 1900 < np.median(pareto) < 2100  # Pareto(1): median 2 x scale
    with pytest.raises(ValueError, match="unknown synthetic data set 'uniform'"):
        synthetic("uniform", 10)


def test_real_trace_readers_match_the_sources_file() -> None:
    if not REAL_DIR.is_dir():
        pytest.skip(f"real traces not found at {REAL_DIR}")
    sets = {d.name: d for d in real_datasets()}
    expected = {  # rows and median (seconds) as SOURCES.md lists them
        "swf-wait": (28_476, 300.0),
        "swf-run": (28_476, 847.0),
        "openb-queue": (7_255, 2.0),
        "openb-run": (7_255, 616.0),
        "model-load": (7_531, 22.718),
        "gateway-queue": (23_478, 0.203),
    }
    for name, (n, median_s) in expected.items():
        assert sets[name].n == n, name
        assert np.median(sets[name].values) / 1e6 == pytest.approx(median_s, rel=1e-3), name
    # 26 823 requests less 30 PENDING and 3 PROCESSING ones
    assert sets["lora-exec"].n == 26_790
    assert np.percentile(sets["lora-exec"].values, 90) / 1e6 == pytest.approx(53.0)


# ------------------------------------------------------------------------------ the guarantee


def _small_sets() -> list[Dataset]:
    sets = [synthetic(name, 10_000) for name in SYNTHETIC]
    sets.extend(real_datasets())  # whole traces: jobmetrics is fast enough
    return sets


@pytest.mark.parametrize("figures", [1, 2, 3])
def test_jobmetrics_stays_within_its_documented_bound_on_every_data_set(figures: int) -> None:
    bound = Geometry(1, 2**40, figures).max_relative_error
    worst_seen = 0.0
    for ds in _small_sets():
        sketch = JobmetricsAdapter(figures, highest_for(ds.values))
        results = run_dataset(ds, [sketch], parts=100)
        single, merged = results
        assert single.mode == "single"
        assert merged.mode == "merged"
        assert single.skipped == merged.skipped == ""
        worst = max(single.errors)
        assert worst < bound, (ds.name, figures, single.errors)
        # merging HDR histograms is exact: the merged parts answer exactly as the whole
        assert merged.estimates == single.estimates, ds.name
        assert single.serialized_bytes > 0
        assert single.memory_bytes >= Geometry(1, highest_for(ds.values), figures).counts_len * 8
        worst_seen = max(worst_seen, worst)
    # the check can fail: the estimates are not exact, the error is there and under the bound
    assert bound / 8 < worst_seen < bound


def test_every_sketch_of_the_study_runs_and_counts_every_value(peers: None) -> None:
    ds = synthetic("bimodal", 3000)
    results = run_dataset(ds, make_sketches(highest_for(ds.values)), parts=10)
    assert len(results) == 14
    for r in results:
        assert len(r.errors) == len(QUANTILES), r.sketch
        assert all(e >= 0 for e in r.errors)
        assert r.serialized_bytes > 0
        assert r.memory_bytes > 0
    by = {(r.sketch, r.mode): r for r in results}
    assert max(by["ddsketch", "single"].errors) <= 0.01 + 1e-12  # DDSketch's alpha
    # the same buckets as jobmetrics at 2 figures, so the same bound
    assert max(by["hdrhistogram", "single"].errors) < 1 / 128
    assert by["hdrhistogram", "single"].serialized_bytes == pytest.approx(
        by["jobmetrics-2", "single"].serialized_bytes, rel=0.05
    )


# ------------------------------------------------------------------------------ the report


def test_replace_section_keeps_everything_outside_the_markers() -> None:
    page = f"# Benchmarks\n\nhand-written\n\n{report.BEGIN}\nold\n{report.END}\n\n## Later\n\nmore\n"
    out = report.replace_section(page, "new table")
    assert (
        out
        == f"# Benchmarks\n\nhand-written\n\n{report.BEGIN}\nnew table\n{report.END}\n\n## Later\n\nmore\n"
    )
    appended = report.replace_section("# Benchmarks\n\ntext\n", "section")
    assert appended == f"# Benchmarks\n\ntext\n\n{report.BEGIN}\nsection\n{report.END}\n"
    with pytest.raises(ValueError, match="misplaced or lone"):
        report.replace_section(f"{report.END}\n{report.BEGIN}\n", "x")


def test_formatting() -> None:
    assert report.fmt_error(0.0) == "0"
    assert report.fmt_error(0.0051234) == "0.512 %"
    assert report.fmt_error(0.406) == "40.6 %"
    assert report.fmt_error(math.inf) == "∞"
    assert report.fmt_bytes(900) == "900 B"
    assert report.fmt_bytes(35040) == "34.2 KiB"
    assert report.fmt_seconds(2.5e-6) == "2.5 µs"
    assert report.fmt_seconds(0.00095) == "950 µs"
    assert report.fmt_seconds(999.6e-9) == "1 µs"
    assert report.fmt_n(10**7) == "10^7"
    assert report.fmt_n(28476) == "28 476"


def test_quick_report_writes_its_section_and_plots(tmp_path: Path, peers: None) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# Benchmarks\n\nkept as is\n\n{report.BEGIN}\nstale\n{report.END}\n\n## After\n\nkept too\n"
    )
    img = tmp_path / "img"
    assert report.main(["--quick", "--doc", str(doc), "--img-dir", str(img)]) == 0
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nkept as is\n\n" + report.BEGIN)
    assert text.endswith(report.END + "\n\n## After\n\nkept too\n")
    assert "stale" not in text
    assert "Quick run" in text
    assert "| jobmetrics 2 s.f. |" in text
    assert "| DDSketch \N{GREEK SMALL LETTER ALPHA} = 1 % |" in text
    assert "### Throughput" in text
    assert "(img/throughput.png)" in text
    assert "(img/error-vs-bytes.png)" in text
    assert "(img/accuracy-lognormal.png)" in text
    assert "peers-insert-batch" not in text  # group names are spelled out
    assert "| insert-batch: insert a batch" in text
    pngs = sorted(p.name for p in img.glob("*.png"))
    assert {"throughput.png", "error-vs-bytes.png", "accuracy-pareto.png", "accuracy-bimodal.png"} <= set(
        pngs
    )
    for p in img.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p.name
        assert f"({'img/' + p.name})" in text  # every plot is shown on the page
