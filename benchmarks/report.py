# ruff: noqa: RUF001 - the generated Markdown is typeset (Greek letters, minus and times signs, dashes)
"""Regenerate the accuracy and throughput figures of ``docs/benchmarks.md`` and ``docs/img/``.

Run from the repository root::

    python -m benchmarks.report            # the full study: 10^3 … 10^7 values, a few minutes
    python -m benchmarks.report --quick    # small sizes, for a smoke test

It runs the accuracy study (:mod:`benchmarks.accuracy`) in this process, runs
``benchmarks/bench_peers.py`` under pytest-benchmark in a subprocess (its JSON gives the throughput
figures), then rewrites only the part of the Markdown page between :data:`BEGIN` and :data:`END`
(appending it if the markers are missing) and writes the PNG plots (matplotlib, Agg backend).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy.datasets import SYNTHETIC, Dataset, real_datasets, synthetic
from benchmarks.accuracy.method import QUANTILES
from benchmarks.accuracy.sketches import make_sketches
from benchmarks.accuracy.study import PARTS, Result, run_dataset

__all__ = ["BEGIN", "END", "Config", "main", "replace_section"]

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- BEGIN GENERATED: python -m benchmarks.report -->"
END = "<!-- END GENERATED: python -m benchmarks.report -->"

FULL_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
QUICK_SIZES = (2_000,)
QUICK_REAL_HEAD = 2_000
QUICK_PARTS = 20

#: Plot colours and markers per sketch (stable across plots).
STYLE: dict[str, tuple[str, str]] = {
    "jobmetrics-1": ("#9ecae1", "v"),
    "jobmetrics-2": ("#2171b5", "o"),
    "jobmetrics-3": ("#08306b", "^"),
    "hdrhistogram": ("#6a51a3", "s"),
    "ddsketch": ("#e6550d", "D"),
    "fastdigest": ("#31a354", "P"),
    "tdigest": ("#a1d99b", "X"),
}

GROUPS: list[tuple[str, str, bool]] = [
    # (pytest-benchmark group, title, per value?)
    ("peers-insert-one", "insert one value (per-value API, Python loop)", True),
    ("peers-insert-batch", "insert a batch (each library's fastest way)", True),
    ("peers-merge", "merge two sketches of 100 k values", False),
    ("peers-quantiles", "eight quantiles from a 100 k-value sketch", False),
    ("peers-encode", "serialise a 100 k-value sketch", False),
    ("peers-decode", "deserialise it", False),
]


@dataclass(frozen=True)
class Config:
    """What one report run covers."""

    quick: bool
    doc: Path
    img_dir: Path
    sizes: tuple[int, ...]
    real_head: int | None
    parts: int
    bench_scale: float
    bench_json: Path | None = None

    @classmethod
    def make(cls, *, quick: bool, doc: Path, img_dir: Path, bench_json: Path | None = None) -> Config:
        if quick:
            return cls(True, doc, img_dir, QUICK_SIZES, QUICK_REAL_HEAD, QUICK_PARTS, 0.01, bench_json)
        return cls(False, doc, img_dir, FULL_SIZES, None, PARTS, 1.0, bench_json)


# ----------------------------------------------------------------------------- progress


class _Progress:
    """A rich progress display on stderr (plain lines when rich is missing or output is not a TTY)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )
        except ImportError:  # pragma: no cover - rich is a core dependency
            return
        console = Console(stderr=True)
        if console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[step]}"),
                console=console,
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def add(self, name: str, total: int | None) -> None:
        if self._bar is not None:
            self._tasks[name] = self._bar.add_task(name, total=total, step="")
        else:
            print(f"{name}: {total if total is not None else '?'} steps", file=sys.stderr, flush=True)

    def total(self, name: str, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._tasks[name], total=total)

    def advance(self, name: str, step: str) -> None:
        if self._bar is not None:
            self._bar.update(self._tasks[name], advance=1, step=step)
        else:
            print(f"  {name}: {step}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", platform.machine())
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']}, model {fields['model']})"
    return model


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        return None
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    mem = _memory_gib()
    out = {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical CPUs",
        "memory": f"{mem:.1f} GiB" if mem is not None else "unknown",
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    for dist in (
        "jobmetrics",
        "numpy",
        "numba",
        "pyarrow",
        "hdrhistogram",
        "ddsketch",
        "fastdigest",
        "tdigest",
        "pytest-benchmark",
        "matplotlib",
    ):
        out[dist] = _version(dist)
    return out


# ----------------------------------------------------------------------------- running


def datasets(config: Config) -> list[Dataset]:
    """The data sets of this run: each synthetic one at each size, then the real traces."""
    out = [synthetic(name, n) for name in SYNTHETIC for n in config.sizes]
    head = config.real_head
    out.extend(ds.head(head) if head is not None else ds for ds in real_datasets())
    return out


def run_accuracy(config: Config, progress: _Progress) -> list[Result]:
    sets = datasets(config)
    n_sketches = len(make_sketches())
    progress.add("accuracy", len(sets) * n_sketches * 2)
    results: list[Result] = []
    for ds in sets:
        results.extend(
            run_dataset(
                ds,
                parts=config.parts,
                on_step=lambda step: progress.advance("accuracy", step),
            )
        )
    return results


def run_throughput(config: Config, progress: _Progress) -> dict[str, Any]:
    """Run ``bench_peers.py`` under pytest-benchmark and return its JSON."""
    if config.bench_json is not None:
        loaded: dict[str, Any] = json.loads(config.bench_json.read_text())
        return loaded
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peers.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "benchmarks" / "bench_peers.py"),
            "--benchmark-only",
            f"--benchmark-json={out}",
            "-p",
            "no:cacheprovider",
            "-v",
            "--color=no",
        ]
        if config.quick:
            cmd += ["--benchmark-max-time=0.02", "--benchmark-min-rounds=3", "--benchmark-warmup=off"]
        env = dict(os.environ, JOBMETRICS_BENCH_SCALE=str(config.bench_scale))
        progress.add("throughput", None)
        lines: list[str] = []
        with subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                collected = re.search(r"collected (\d+) items?", line)
                if collected:
                    progress.total("throughput", int(collected.group(1)))
                test = re.match(r"\S+::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", line)
                if test:
                    progress.advance("throughput", f"{test.group(1)} {test.group(2)}")
        if proc.returncode != 0 or not out.is_file():
            tail = "".join(lines[-40:])
            raise RuntimeError(f"benchmarks/bench_peers.py failed (exit {proc.returncode}):\n{tail}")
        data: dict[str, Any] = json.loads(out.read_text())
        return data


# ----------------------------------------------------------------------------- formatting


def fmt_error(e: float) -> str:
    """A relative error as a percentage with three significant digits (``0`` when exact)."""
    if math.isinf(e) or math.isnan(e):
        return "∞"
    if e == 0:
        return "0"
    pct = e * 100
    if pct >= 10:
        return f"{pct:.1f} %"
    return f"{pct:.3g} %"


def fmt_bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}" if n < 100 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def fmt_seconds(s: float) -> str:
    s = float(f"{s:.3g}")  # round first, so that 999.6 ns reads 1 µs, not 1000 ns
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    v = s / 1e-9
    return f"{v:.3g} ns" if v < 100 else f"{v:.0f} ns"


def fmt_ratio(r: float) -> str:
    """A ratio of times: three significant digits, whole numbers from 100 on."""
    if math.isnan(r):
        return ""
    if r >= 100:
        return f"{r:,.0f}".replace(",", " ")
    return f"{r:.3g}"


def fmt_n(n: int) -> str:
    exp = round(math.log10(n)) if n > 0 else 0
    if n == 10**exp and exp >= 3:
        return f"10^{exp}"
    return f"{n:,}".replace(",", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    return out


def _largest(results: list[Result]) -> list[Result]:
    """For each data set, the results at its largest size."""
    top: dict[str, int] = {}
    for r in results:
        top[r.dataset] = max(top.get(r.dataset, 0), r.n)
    return [r for r in results if r.n == top[r.dataset]]


def _order(results: list[Result]) -> tuple[list[str], dict[str, str], list[str], dict[str, str]]:
    sets: list[str] = []
    set_labels: dict[str, str] = {}
    sketches: list[str] = []
    sketch_labels: dict[str, str] = {}
    for r in results:
        if r.dataset not in set_labels:
            sets.append(r.dataset)
            set_labels[r.dataset] = r.label
        if r.sketch not in sketch_labels:
            sketches.append(r.sketch)
            sketch_labels[r.sketch] = r.sketch_label
    return sets, set_labels, sketches, sketch_labels


def _cell(r: Result | None, value: Callable[[Result], str]) -> str:
    if r is None:
        return ""
    if r.skipped:
        return "–"
    return value(r)


def accuracy_tables(results: list[Result]) -> list[str]:
    top = _largest(results)
    sets, set_labels, sketches, sketch_labels = _order(top)
    index = {(r.dataset, r.sketch, r.mode): r for r in top}
    sizes = {r.dataset: r.n for r in top}
    lines: list[str] = []
    header = ["sketch", *[f"{s} ({fmt_n(sizes[s])})" for s in sets]]
    for mode, title in (
        ("single", "one sketch fed every value"),
        ("merged", f"{_parts(results)} partial sketches merged, then queried"),
    ):
        lines += [
            "",
            f"Worst relative error over the eight quantiles, largest size of each data set, {title}:",
            "",
        ]
        rows = [
            [
                sketch_labels[k],
                *[_cell(index.get((s, k, mode)), lambda r: fmt_error(r.max_error)) for s in sets],
            ]
            for k in sketches
        ]
        lines += _table(header, rows)
    lines += [
        "",
        "∞: the exact answer is 0 (many zero durations) and the sketch answered something else, an "
        "error no relative measure can express. `hdrhistogram` has jobmetrics' buckets at 2 figures "
        "but picks the rank by rounding, `round(q n)` (as the C and Go libraries do), where jobmetrics "
        "takes Java's `ceil(q n)`: hence the rare differences between the two rows. Merging HDR "
        "histograms adds their counts, so their merged rows equal their single ones.",
    ]

    # worst error by size, synthetic sets, single mode
    synth = [r for r in results if r.synthetic and r.mode == "single"]
    if synth:
        ns = sorted({r.n for r in synth})
        if len(ns) > 1:
            lines += ["", "Worst relative error by data-set size (synthetic sets, one sketch):", ""]
            by = {(r.dataset, r.n, r.sketch): r for r in synth}
            s_sets, _, s_sketches, _ = _order(synth)
            rows = []
            for s in s_sets:
                for k in s_sketches:
                    rows.append(
                        [
                            s,
                            sketch_labels[k],
                            *[_cell(by.get((s, n, k)), lambda r: fmt_error(r.max_error)) for n in ns],
                        ]
                    )
            lines += _table(["data set", "sketch", *[fmt_n(n) for n in ns]], rows)

    # per quantile, largest size, single mode
    lines += ["", "Relative error per quantile, largest size of each data set, one sketch:", ""]
    qs = top[0].quantiles if top else list(QUANTILES)
    rows = []
    for s in sets:
        for k in sketches:
            r = index.get((s, k, "single"))
            if r is None:
                continue
            cells = ["–"] * len(qs) if r.skipped else [fmt_error(e) for e in r.errors]
            rows.append([s, sketch_labels[k], *cells])
    lines += _table(["data set", "sketch", *[f"q = {q:g}" for q in qs]], rows)

    # memory
    lines += [
        "",
        "Size of one sketch holding the whole data set (largest size): serialised / in memory:",
        "",
    ]
    rows = [
        [
            sketch_labels[k],
            *[
                _cell(
                    index.get((s, k, "single")),
                    lambda r: f"{fmt_bytes(r.serialized_bytes)} / {fmt_bytes(r.memory_bytes)}",
                )
                for s in sets
            ],
        ]
        for k in sketches
    ]
    lines += _table(header, rows)
    lines += ["", "Data sets:", ""]
    lines += _table(
        ["data set", "what", "values", "kind"],
        [
            [s, set_labels[s], fmt_n(sizes[s]), "synthetic" if _is_synth(top, s) else "real trace"]
            for s in sets
        ],
    )
    return lines


def _capped_note(results: list[Result]) -> str:
    """Which sketches skipped the largest sets, and how slow they were at the sizes they ran."""
    notes = []
    for key in dict.fromkeys(r.sketch for r in results if r.skipped):
        ran = [r for r in results if r.sketch == key and r.mode == "single" and not r.skipped]
        cap = max((r.n for r in ran), default=0)
        at_cap = [r for r in ran if r.n == cap]
        speed = (
            f" (it took {at_cap[0].seconds / cap * 1e6:.3g} µs a value at n = {fmt_n(cap)})" if at_cap else ""
        )
        label = ran[0].sketch_label if ran else key
        notes.append(f"{label} is fed at most {fmt_n(cap)} values{speed}; larger sets show – in the tables.")
    return " ".join(notes)


def _parts(results: list[Result]) -> int:
    for r in results:
        if "parts" in r.extra:
            return int(r.extra["parts"])
    return PARTS


def _is_synth(results: list[Result], name: str) -> bool:
    return any(r.synthetic for r in results if r.dataset == name)


@dataclass(frozen=True)
class BenchRow:
    group: str
    sketch: str
    label: str
    median: float
    values: int
    note: str


def bench_rows(data: dict[str, Any]) -> list[BenchRow]:
    rows = []
    for b in data.get("benchmarks", []):
        extra = b.get("extra_info", {})
        rows.append(
            BenchRow(
                group=str(b.get("group")),
                sketch=str(extra.get("sketch", b.get("param", b["name"]))),
                label=str(extra.get("label", b["name"])),
                median=float(b["stats"]["median"]),
                values=int(extra.get("values", 1)),
                note=str(extra.get("note", "")),
            )
        )
    return rows


def throughput_tables(rows: list[BenchRow]) -> list[str]:
    lines: list[str] = []
    table = []
    for group, title, per_value in GROUPS:
        members = [r for r in rows if r.group == group]
        if not members:
            continue
        ref = next((r for r in members if r.sketch.startswith("jobmetrics")), None)
        for i, r in enumerate(sorted(members, key=lambda r: r.median / (r.values if per_value else 1))):
            cost = r.median / r.values if per_value else r.median
            ref_cost = (ref.median / ref.values if per_value else ref.median) if ref else float("nan")
            ratio = cost / ref_cost if ref else float("nan")
            table.append(
                [
                    f"{group.removeprefix('peers-')}: {title}" if i == 0 else "",
                    r.label,
                    fmt_seconds(r.median),
                    f"{r.values:,}".replace(",", " ") if per_value else "",
                    fmt_seconds(cost) if per_value else "",
                    "1" if r is ref else fmt_ratio(ratio),
                    r.note,
                ]
            )
    lines += _table(
        ["operation", "sketch", "median", "values", "per value", "× jobmetrics' time", "how"], table
    )
    return lines


# ----------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FLOOR = 1e-6  # relative errors of 0 are drawn at this level on the log axes
INF_AT = 10.0  # and infinite ones (an estimate off an exact 0) at this one


def plot_accuracy(results: list[Result], img_dir: Path) -> list[Path]:
    """One PNG per data set: relative error against quantile, one sketch and merged side by side."""
    plt = _pyplot()
    top = _largest(results)
    sets, set_labels, sketches, sketch_labels = _order(top)
    paths = []
    for s in sets:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
        for ax, mode, title in (
            (axes[0], "single", "one sketch"),
            (axes[1], "merged", f"{_parts(results)} partial sketches merged"),
        ):
            for k in sketches:
                r = next((r for r in top if r.dataset == s and r.sketch == k and r.mode == mode), None)
                if r is None or r.skipped:
                    continue
                color, marker = STYLE.get(k, ("grey", "o"))
                y = [max(e, FLOOR) if math.isfinite(e) else INF_AT for e in r.errors]
                ax.plot(range(len(r.quantiles)), y, marker=marker, color=color, label=sketch_labels[k])
                qs = r.quantiles
            for bound, text, dy in ((1 / 128, "bound at 2 s.f.", -9), (0.01, "DDSketch α", 2)):
                ax.axhline(bound, color="grey", linestyle=":", linewidth=1)
                ax.annotate(
                    text, (0, bound), xytext=(2, dy), textcoords="offset points", fontsize=7, color="grey"
                )
            ax.set_xticks(range(len(qs)), [f"{q:g}" for q in qs])
            ax.set_yscale("log")
            ax.set_xlabel("quantile")
            ax.set_title(title)
            ax.grid(True, which="major", alpha=0.3)
        axes[0].set_ylabel(f"relative error (0 drawn at {FLOOR:g}, ∞ at {INF_AT:g})")
        n = next(r.n for r in top if r.dataset == s)
        fig.suptitle(f"{s}: {set_labels[s]} ({fmt_n(n)} values)")
        axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        fig.tight_layout()
        path = img_dir / f"accuracy-{s}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_error_vs_bytes(results: list[Result], img_dir: Path) -> Path:
    """Mean relative error against serialised and in-memory size, every data set at its largest size."""
    plt = _pyplot()
    top = [r for r in _largest(results) if r.mode == "single" and not r.skipped]
    _, _, sketches, sketch_labels = _order(top)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, attr, title in (
        (axes[0], "serialized_bytes", "serialised size"),
        (axes[1], "memory_bytes", "in-memory size"),
    ):
        for k in sketches:
            pts = [r for r in top if r.sketch == k and all(math.isfinite(e) for e in r.errors)]
            color, marker = STYLE.get(k, ("grey", "o"))
            ax.scatter(
                [getattr(r, attr) for r in pts],
                [max(float(np.mean(r.errors)), FLOOR) for r in pts],
                color=color,
                marker=marker,
                label=sketch_labels[k],
                alpha=0.8,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{title} (bytes)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("mean relative error over the eight quantiles")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle("Error against bytes: one point per (sketch, data set)")
    fig.tight_layout()
    path = img_dir / "error-vs-bytes.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_throughput(rows: list[BenchRow], img_dir: Path) -> Path:
    """Horizontal bars per operation: time per value (insertion) or per call (the rest)."""
    plt = _pyplot()
    present = [g for g in GROUPS if any(r.group == g[0] for r in rows)]
    fig, axes = plt.subplots(len(present), 1, figsize=(8, 1.9 * len(present) + 0.5))
    axes = np.atleast_1d(axes)
    for ax, (group, title, per_value) in zip(axes, present, strict=True):
        members = sorted(
            (r for r in rows if r.group == group), key=lambda r: -(r.median / (r.values if per_value else 1))
        )
        costs = [r.median / r.values if per_value else r.median for r in members]
        colors = [STYLE.get(r.sketch, ("grey", "o"))[0] for r in members]
        ax.barh([r.label for r in members], costs, color=colors)
        ax.set_xscale("log")
        for y, c in enumerate(costs):
            ax.text(c, y, " " + fmt_seconds(c), va="center", fontsize=7)
        ax.set_title(f"{title}: {'time per value' if per_value else 'time per call'}", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlim(min(costs) / 3, max(costs) * 20)
        ax.set_xlabel("seconds (log scale)", fontsize=8)
    fig.tight_layout()
    path = img_dir / "throughput.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the page


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``section``
    (appended, with the markers, when they are absent)."""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 and end < 0:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    if start < 0 or end < start:
        raise ValueError("the page has a misplaced or lone generated-section marker; fix it by hand")
    return text[:start] + block + text[end + len(END) :]


def render(
    config: Config,
    results: list[Result],
    rows: list[BenchRow],
    images: dict[str, list[Path]],
    info: dict[str, str],
    seconds: float,
) -> str:
    rel = os.path.relpath(config.img_dir, config.doc.parent).replace(os.sep, "/")
    cmd = "python -m benchmarks.report" + (" --quick" if config.quick else "")
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Accuracy and throughput against the peers",
        "",
        f"Everything from here to the end of this section is written by `{cmd}` "
        f"({when}, {seconds / 60:.1f} minutes); edit `benchmarks/report.py`, not this text.",
    ]
    if config.quick:
        lines += ["", "**Quick run: small sizes, for testing the report only. Not figures to quote.**"]
    lines += [
        "",
        "Sketches: jobmetrics' `HdrHistogram` at 1, 2 (the default) and 3 significant figures; "
        "`hdrhistogram` (the Python HdrHistogram, 2 figures: the same buckets as jobmetrics'); "
        "`ddsketch` with relative accuracy α = 1 %; the t-digests `fastdigest` (Rust, 1 000 "
        "centroids) and `tdigest` (pure Python, δ = 0.01). Adapters, serialised formats and how "
        "memory is measured: `benchmarks/accuracy/sketches.py`.",
        "",
        "Error measure (DDSketch paper): for quantile q of n sorted values x, any answer between "
        "x[⌊q(n−1)⌋] and x[⌈q(n−1)⌉] is exact (error 0); otherwise the error is the distance to the "
        "nearer of the two, relative to it. Values are integer microseconds for every sketch. "
        f"Sizes: {', '.join(fmt_n(n) for n in config.sizes)} values for the synthetic sets, the "
        "whole trace for the real ones"
        + (f" (first {config.real_head:,} values in this quick run)" if config.real_head else "")
        + ". "
        + _capped_note(results),
        "",
        "### Machine",
        "",
    ]
    lines += _table(["", ""], [[k, v] for k, v in info.items()])
    lines += [
        "",
        "The machine is a shared 2-core VM and other work ran during the measurement: absolute "
        "times move between runs; compare the ratios, measured in one process.",
    ]
    if results:
        lines += ["", "### Accuracy", ""]
        lines += [f"![error against quantile: {p.stem}]({rel}/{p.name})" for p in images.get("accuracy", [])]
        lines += accuracy_tables(results)
        lines += ["", "### Error against bytes", ""]
        lines += [f"![error against bytes]({rel}/{p.name})" for p in images.get("bytes", [])]
    if rows:
        lines += [
            "",
            "### Throughput",
            "",
            "`benchmarks/bench_peers.py` (pytest-benchmark medians; durations in µs from "
            "`lognormal(ln(2e5), 1)`). Batch insertion: 10^6 values for the libraries with a batch "
            "API, a loop of per-value calls on 10^5 values for those without one, and `tdigest`'s "
            "`batch_update` (a Python loop) on 10^4: compare the per-value column."
            + (" Quick run: sizes scaled by 0.01." if config.quick else ""),
            "",
        ]
        lines += [f"![throughput]({rel}/{p.name})" for p in images.get("throughput", [])]
        lines += [""]
        lines += throughput_tables(rows)
    return "\n".join(lines) + "\n"


def run(config: Config) -> None:
    started = time.perf_counter()
    config.img_dir.mkdir(parents=True, exist_ok=True)
    with _Progress() as progress:
        results = run_accuracy(config, progress)
        bench = run_throughput(config, progress)
    rows = bench_rows(bench)
    images = {
        "accuracy": plot_accuracy(results, config.img_dir),
        "bytes": [plot_error_vs_bytes(results, config.img_dir)],
        "throughput": [plot_throughput(rows, config.img_dir)] if rows else [],
    }
    section = render(config, results, rows, images, machine(), time.perf_counter() - started)
    text = config.doc.read_text(encoding="utf-8") if config.doc.is_file() else "# Benchmarks\n"
    config.doc.write_text(replace_section(text, section), encoding="utf-8")
    print(f"wrote {config.doc} and {sum(len(v) for v in images.values())} plots under {config.img_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke test (seconds, not minutes)"
    )
    parser.add_argument(
        "--doc", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Markdown page to update"
    )
    parser.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img", help="where the PNG plots go")
    parser.add_argument(
        "--bench-json",
        type=Path,
        default=None,
        help="use this pytest-benchmark JSON of bench_peers.py instead of running it",
    )
    args = parser.parse_args(argv)
    run(Config.make(quick=args.quick, doc=args.doc, img_dir=args.img_dir, bench_json=args.bench_json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
